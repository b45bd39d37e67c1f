"""What every HTML page tlearn writes shares: the <head>, the style and the number filters.

The report, compare, rank, doctor and explain pages build on these; this module sits below all of them (it knows
no page), so a low layer such as tlearn.explain can write a page that looks like the run report.
"""
from __future__ import annotations

import math

import numpy as np

STYLE = """
:root { --fg: #111827; --muted: #6b7280; --line: #e5e7eb; --bg: #f4f6f9; --accent: #2563eb; --bad: #dc2626; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
       color: var(--fg); background: var(--bg); }
header { background: #0f172a; color: #f8fafc; padding: 18px 0 16px; }
.wrap { max-width: 1240px; margin: 0 auto; padding: 0 24px; }
header h1 { font-size: 20px; margin: 0 0 4px; font-weight: 600; }
header .sub { color: #cbd5e1; font-size: 13px; }
header .sub code { color: #e2e8f0; }
.cards { display: flex; flex-wrap: wrap; gap: 10px; margin-top: 12px; }
.card { background: rgba(255,255,255,0.08); border: 1px solid rgba(255,255,255,0.12); border-radius: 8px;
        padding: 6px 14px; min-width: 110px; }
.card .k { font-size: 11px; color: #94a3b8; text-transform: uppercase; letter-spacing: .04em; }
.card .v { font-size: 20px; font-weight: 600; font-variant-numeric: tabular-nums; }
nav { position: sticky; top: 0; z-index: 10; background: #ffffff; border-bottom: 1px solid var(--line);
      box-shadow: 0 1px 3px rgba(0,0,0,0.04); }
nav .wrap { display: flex; gap: 4px; overflow-x: auto; white-space: nowrap; padding-top: 6px; padding-bottom: 6px; }
nav a { color: #334155; text-decoration: none; padding: 4px 10px; border-radius: 6px; font-size: 13px; }
nav a:hover { background: #eef2ff; color: var(--accent); }
main { padding-bottom: 40px; }
section { background: #ffffff; border: 1px solid var(--line); border-radius: 10px; padding: 16px 20px;
          margin: 16px 0; scroll-margin-top: 48px; }
h2 { font-size: 17px; margin: 0 0 4px; }
h3 { font-size: 14px; margin: 14px 0 6px; }
p.hint { color: var(--muted); margin: 2px 0 10px; font-size: 13px; }
.problems { background: #fef3c7; border: 1px solid #f59e0b; }
table.data { border-collapse: collapse; font-variant-numeric: tabular-nums; font-size: 13px; }
table.data th, table.data td { padding: 4px 10px; border-bottom: 1px solid var(--line); text-align: right; }
table.data th { background: #f8fafc; font-weight: 600; color: #374151; position: sticky; top: 0; }
table.data td.l, table.data th.l { text-align: left; }
table.data tr.group th { background: #eef2f7; text-align: center; }
table.data td.muted { color: var(--muted); }
.ci { color: var(--muted); font-size: 11px; white-space: nowrap; }
.card .ci { color: #94a3b8; }
.scroll { overflow-x: auto; max-width: 100%; }
.scroll-y { max-height: 560px; overflow-y: auto; }
img.plot { max-width: 100%; height: auto; display: block; }
.cm-pair { display: flex; flex-wrap: wrap; gap: 28px; align-items: flex-start; }
table.cm { border-collapse: collapse; font-variant-numeric: tabular-nums; font-size: 12px; }
table.cm td { min-width: 40px; height: 30px; text-align: center; border: 1px solid #f1f5f9; padding: 0 4px; }
table.cm th { font-weight: 500; color: #374151; padding: 2px 6px; }
table.cm th.row { text-align: right; white-space: nowrap; }
table.cm th.col { vertical-align: bottom; }
table.cm td.total, table.cm th.total { color: var(--muted); background: #fafafa; }
table.cm.large { font-size: 10px; }
table.cm.large td { min-width: 21px; width: 21px; height: 19px; padding: 0; }
table.cm.large th { padding: 0 3px; font-size: 10px; }
.axis { color: var(--muted); font-size: 12px; }
details { margin: 8px 0; }
summary { cursor: pointer; color: #1e3a8a; font-weight: 500; }
.gallery { display: grid; grid-template-columns: repeat(auto-fill, minmax(150px, 1fr)); gap: 10px; }
figure.thumb { margin: 0; border: 1px solid var(--line); border-radius: 8px; padding: 6px; font-size: 12px;
               background: #ffffff; }
figure.thumb img, figure.thumb .missing { width: 100%; height: 128px; object-fit: contain; display: block;
               background: #f3f4f6; border-radius: 4px; }
figure.thumb .missing { display: flex; align-items: center; justify-content: center; text-align: center;
               color: var(--muted); font-size: 11px; padding: 6px; }
figure.thumb figcaption { margin-top: 4px; line-height: 1.35; overflow-wrap: anywhere; }
.true { color: #15803d; font-weight: 600; } .pred { color: var(--bad); font-weight: 600; }
.path { color: var(--muted); font-size: 11px; }
.hm-grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(300px, 1fr)); gap: 10px; }
figure.hm-card { margin: 0; border: 1px solid var(--line); border-radius: 8px; padding: 6px; font-size: 12px; }
.hm-row { display: flex; gap: 4px; }
.hm-row img { width: 33%; max-width: 128px; aspect-ratio: 1; object-fit: contain; border-radius: 4px; background: #f3f4f6; }
figure.hm-card figcaption { margin-top: 4px; line-height: 1.35; overflow-wrap: anywhere; }
.muted { color: var(--muted); }
dl.kv { display: grid; grid-template-columns: max-content 1fr; gap: 4px 16px; margin: 0; font-size: 13px; }
dl.kv dt { color: var(--muted); } dl.kv dd { margin: 0; overflow-wrap: anywhere; }
pre { background: #f8fafc; border: 1px solid var(--line); border-radius: 6px; padding: 10px; font-size: 12px;
      overflow: auto; max-height: 420px; }
.tag { display: inline-block; font-size: 11px; padding: 0 6px; border-radius: 4px; background: #fef3c7;
       color: #92400e; }
table.data.compare td, table.data.compare th { white-space: nowrap; }
footer { color: var(--muted); font-size: 12px; padding: 0 0 24px; }
@media print { nav { display: none; } section { break-inside: avoid; } }
"""

# The <head> of every page tlearn renders with Jinja (report, compare, rank, doctor, explain): each page's template
# is this plus its own body. The view gives title and style, and generator where the page is marked as tlearn's.
HEAD = r"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
{% if generator is defined %}
<meta name="generator" content="{{ generator }}">
{% endif %}
<title>{{ title }}</title>
<style>{{ style | safe }}</style>
</head>
"""


def fmt(value, digits: int = 3) -> str:
    """A number with fixed decimals, '–' for missing or NaN; integers with thousands separators."""
    if value is None or (isinstance(value, (float, np.floating)) and math.isnan(value)):
        return "–"
    if isinstance(value, (bool, np.bool_)):
        return str(value)
    if isinstance(value, (int, np.integer)):
        return f"{value:,}"
    if isinstance(value, (float, np.floating)):
        return f"{value:.{digits}f}"
    return str(value)


def pct(value, digits: int = 0) -> str:
    """A fraction as a percentage with fixed decimals, '–' for missing or NaN."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{100 * value:.{digits}f}"
