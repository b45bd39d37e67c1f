"""STUDY/report.html: one self-contained page (inline CSS, figures as data: URIs), readable at a glance."""
from __future__ import annotations

import base64
import json
from html import escape

from .selection import selection_section
from .summary import fkey

STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1100px;color:#222;
padding:0 1rem}
h1{font-size:1.6rem;margin-bottom:.2rem}.sub{color:#666;margin-top:0}
.answers{display:flex;gap:1rem;flex-wrap:wrap;margin:1.2rem 0}
.answer{flex:1 1 280px;border:1px solid #ddd;border-radius:8px;padding:.8rem 1rem;background:#fafafa}
.answer .num{font-size:2rem;font-weight:600}.answer .name{color:#555;text-transform:uppercase;font-size:.8rem}
.answer p{margin:.4rem 0 0 0;font-size:.92rem}
.figs{display:grid;grid-template-columns:repeat(auto-fill,minmax(460px,1fr));gap:1rem}.figs figure{margin:0}
.figs img{width:100%;height:auto;border:1px solid #eee}
table{border-collapse:collapse;font-size:.88rem;margin:1rem 0}th,td{border-bottom:1px solid #e3e3e3;
padding:.3rem .6rem;text-align:right}th:first-child,td:first-child{text-align:left}
th{background:#f3f3f3}dt{font-weight:600;margin-top:.5rem}pre{background:#f6f6f6;padding:.8rem;overflow:auto}
"""


def page_head(title: str) -> str:
    """The page's start, up to and with <body>; the incremental report opens with it too, for the same look."""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>
<style>{STYLE}</style></head><body>"""


def _img(png: bytes, alt: str, name: str) -> str:
    data = base64.b64encode(png).decode()
    return (f'<figure><img class="plot" data-plot="{escape(name)}" alt="{escape(alt)}" '
            f'src="data:image/png;base64,{data}"><figcaption>{escape(alt)}</figcaption></figure>')


def _f(x, fmt: str = ".3f", missing: str = "–") -> str:
    return missing if x is None else format(x, fmt)


def _answer_cards(summary: dict) -> str:
    sentences = summary["sentences"]
    cards = [
        ("labels saved", _f(summary.get("labels_saved"), ".0%"), summary.get("labels_saved_strategy")),
        ("convergence speedup", _f(summary.get("convergence_speedup"), ".1f") + ("×" if summary.get(
            "convergence_speedup") is not None else ""), summary.get("convergence_speedup_strategy")),
        ("accuracy gain", _f(summary.get("accuracy_gain"), "+.3f"), summary.get("accuracy_gain_strategy")),
    ]
    html = []
    for i, (name, num, strategy) in enumerate(cards):
        words = sentences[i] if len(sentences) == len(cards) else ""
        html.append(f'<div class="answer" id="answer-{name.replace(" ", "-")}"><div class="name">{name}'
                    f'{" · " + escape(strategy) + " (chosen on val)" if strategy else ""}</div><div class="num">{num}</div>'
                    f"<p>{escape(words)}</p></div>")
    extra = "" if len(sentences) == len(cards) else "".join(f"<p>{escape(s)}</p>" for s in sentences)
    return f'<div class="answers">{"".join(html)}</div>{extra}{_selection(summary)}'


def _selection(summary: dict) -> str:
    """How the headline strategy was chosen, and the best figure of any strategy, labelled as a maximum."""
    sel = summary.get("selection") or {}
    if not summary.get("selected_strategy"):
        return ""
    scores = ", ".join(f"{escape(s)} {v:.3f}" for s, v in sorted(sel.get("val_accuracy", {}).items(),
                                                                  key=lambda kv: -kv[1]))
    chosen = (f'<p id="selection">The answers above are those of <b>{escape(summary["selected_strategy"])}</b>, '
              f'chosen by the {escape(sel.get("rule", ""))} ({scores}); the {escape(summary["metric"])} is only '
              f"reported, never used to choose.{' ' + escape(sel['note']) + '.' if sel.get('note') else ''}</p>")
    maxima = summary.get("max_over_strategies") or {}
    parts = [f"{name.replace('_', ' ')} {_f(m['value'], fmt)} ({escape(m['strategy'])})"
             for name, fmt in (("labels_saved", ".0%"), ("convergence_speedup", ".1f"), ("accuracy_gain", "+.3f"))
             if (m := maxima.get(name)) and m.get("value") is not None]
    best = (f'<p id="max-over-strategies">Maximum over {maxima.get("strategies", 0)} strategies (optimistic: '
            f'each figure is the best strategy\'s on that figure): {"; ".join(parts)}.</p>') if parts else ""
    return chosen + best


def _table(rows: list[dict]) -> str:
    head = ("strategy", "labelled", "train images", "seeds", "accuracy mean ± std", "min – max", "balanced acc",
            "train s", "epochs", "s to 95% of scratch best", "epochs to it", "epochs to plateau")
    body = []
    for r in rows:
        cells = [
            escape(r["strategy"]), f"{100 * r['fraction']:g}%", _f(r["n_train"], ".0f"), str(r["seeds"]),
            f"{_f(r['accuracy_mean'])} ± {_f(r['accuracy_std'])}",
            f"{_f(r['accuracy_min'])} – {_f(r['accuracy_max'])}", _f(r["balanced_accuracy_mean"]),
            _f(r["train_seconds_mean"], ".1f"), _f(r["epochs_mean"], ".1f"),
            _f(r["seconds_to_threshold_mean"], ".1f") + (f" ({r['reached_threshold']}/{r['seeds']})"
                                                         if r["seconds_to_threshold_mean"] is not None else ""),
            _f(r["epochs_to_threshold_mean"], ".1f"), _f(r["epochs_to_plateau_mean"], ".1f"),
        ]
        body.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return ('<table id="results"><thead><tr>' + "".join(f"<th>{h}</th>" for h in head) + "</tr></thead><tbody>"
            + "".join(body) + "</tbody></table>")


def _cells(records: list[dict], split: str) -> str:
    rows = []
    for r in sorted(records, key=lambda r: (r["strategy"], r["fraction"], r["seed"])):
        acc = r.get(split, {}).get("accuracy")
        rows.append(f"<tr><td>{escape(r['strategy'])}</td><td>{100 * r['fraction']:g}%</td><td>{r['seed']}</td>"
                    f"<td>{r.get('n_train') or '–'}</td><td>{_f(acc)}</td><td>{_f(r.get('train_seconds'), '.1f')}"
                    f"</td><td>{_f(r.get('epochs'), '.0f')}</td><td>{escape(r['run'])}</td></tr>")
    head = "".join(f"<th>{h}</th>" for h in ("strategy", "labelled", "seed", "train images", f"{split} accuracy",
                                             "train s", "epochs", "run directory"))
    return f'<table id="cells"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def render_report(study: dict, summary: dict, figures: dict[str, tuple[bytes, str]]) -> str:
    """The whole page. figures: name -> (png bytes, caption)."""
    split = study["metric_split"]
    data = study["data"]
    cfg = study["config"]
    definitions = "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in summary["definitions"].items())
    figs = "".join(_img(png, caption, name) for name, (png, caption) in figures.items())
    thresholds = ", ".join(f"{100 * float(f):g}%: {t:.3f}" for f, t in summary["thresholds"].items())
    counts = ", ".join(f"{k} {v}" for k, v in data["counts"].items() if v)
    return f"""{page_head(f"tlearn transfer study: {data['root']}")}
<h1>Transfer study: {escape(data['root'])}</h1>
<p class="sub">{len(data['classes'])} classes ({escape(', '.join(data['classes'][:12]))}{' …' if len(data['classes']) > 12
                                                                                   else ''}); {escape(counts)};
validation: {escape(data['val_source'])}. Strategies {escape(', '.join(cfg['strategies']))};
labelled fractions {escape(', '.join(f'{100 * f:g}%' for f in cfg['fractions']))}; {cfg['seeds']} seed(s);
backbone {escape(str(study.get('backbone', '')))}. Accuracy is measured on the <b>{split}</b> split.</p>
<h2>The three answers</h2>
{_answer_cards(summary)}
<h2>Figures</h2>
<div class="figs">{figs}</div>
{selection_section(study["selection"]) if study.get("selection") else ""}
<h2>Results by strategy and labelled fraction</h2>
{_table(summary['table'])}
<p>95% of scratch's best validation accuracy, by fraction: {escape(thresholds) or '–'}.</p>
<h2>Definitions</h2><dl>{definitions}</dl>
<h2>Every run</h2>
{_cells(study['cells'], split)}
<h2>Study configuration</h2><pre>{escape(json.dumps(cfg, indent=2))}</pre>
</body></html>
"""


def render_selection_report(study: dict) -> str:
    """The page of a study that only simulated which images to label."""
    data, cfg = study["data"], study["config"]
    counts = ", ".join(f"{k} {v}" for k, v in data["counts"].items() if v)
    return f"""{page_head(f"tlearn selection study: {data['root']}")}
<h1>Selection study: {escape(data['root'])}</h1>
<p class="sub">{len(data['classes'])} classes; {escape(counts)}; backbone {escape(str(study.get('backbone', '')))};
{cfg['seeds']} seed(s). Accuracy is measured on the <b>{escape(study['metric_split'])}</b> split.</p>
{selection_section(study["selection"])}
<h2>Study configuration</h2><pre>{escape(json.dumps(cfg, indent=2))}</pre>
</body></html>
"""


__all__ = ["render_report", "render_selection_report", "page_head", "fkey"]
