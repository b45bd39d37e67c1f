"""Runs side by side: data, backbone, strategy, metrics per split, train time and model size."""
from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path

from .._version import __version__
from ..files import atomic_write_text
from .contents import RunContents, load_run_contents
from .html import fmt, render
from .templates import STYLE

SPLITS = ("val", "test")
# (key in a split's metrics, short name for the terminal, long name for the page, higher is better)
METRICS = [("accuracy", "acc", "accuracy", True), ("balanced_accuracy", "bal", "balanced accuracy", True),
           ("macro_f1", "F1", "macro F1", True), ("auroc", "AUROC", "AUROC", True),
           ("loss", "loss", "log loss", False), ("ece", "ECE", "ECE", False)]
TERMINAL_METRICS = ("accuracy", "balanced_accuracy", "macro_f1", "auroc")


def run_row(rc: RunContents) -> dict:
    """The facts of one run that a comparison needs, flat."""
    run = rc.sections
    root = str(run.data.root)
    row = {
        "run": rc.name, "path": str(rc.path), "data": Path(root).name or root, "data_root": root,
        "classes": len(rc.classes), "counts": run.data.counts,
        "backbone": run.backbone.name, "weights": run.backbone.weights,
        "strategy": run.strategy.name or "?",
        "train_seconds": rc.metrics.get("train_seconds"), "model_bytes": rc.model_bytes,
        "params": rc.metrics.get("params"),
        "report": str(rc.path / "report.html") if (rc.path / "report.html").is_file() else None,
    }
    for split in SPLITS:
        block = rc.split_metrics(split) or {}
        for key, *_ in METRICS:
            row[f"{split}_{key}"] = block.get(key)
    return row


def compare_runs(runs: list[str | Path]) -> list[dict]:
    """One flat dict per run directory, in the order given."""
    return [run_row(load_run_contents(r)) for r in runs]


def _columns(rows: list[dict]) -> list[tuple[str, str, str, bool]]:
    """(row key, short name, long name, higher is better) of the metric columns some run has."""
    cols = []
    for split in SPLITS:
        for key, short, long, higher in METRICS:
            if any(r.get(f"{split}_{key}") is not None for r in rows):
                cols.append((f"{split}_{key}", f"{split} {short}", f"{split} {long}", higher))
    return cols


def _warnings(rows: list[dict]) -> list[str]:
    roots = {r["data_root"] for r in rows}
    if len(roots) > 1:
        return [f"the runs are on different data ({', '.join(sorted(roots))}): their metrics are not comparable."]
    return []


def format_table(rows: list[dict]) -> str:
    """A plain-text table for the terminal."""
    cols = [c for c in _columns(rows) if c[0].split("_", 1)[1] in TERMINAL_METRICS]
    header = ["run", "data", "backbone", "strategy"] + [c[1] for c in cols] + ["train s", "size MB"]
    body = []
    for r in rows:
        size = f"{r['model_bytes'] / 1e6:.1f}" if r["model_bytes"] else "–"
        secs = f"{r['train_seconds']:.1f}" if r["train_seconds"] is not None else "–"
        body.append([r["run"], r["data"], r["backbone"], r["strategy"]] + [fmt(r[c[0]]) for c in cols] + [secs, size])
    widths = [max(len(str(x)) for x in col) for col in zip(header, *body)]
    lines = ["  ".join(str(x).ljust(w) if i < 4 else str(x).rjust(w) for i, (x, w) in enumerate(zip(line, widths)))
             for line in [header] + body]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines + [f"warning: {w}" for w in _warnings(rows)])


def write_compare_html(rows: list[dict], out: str | Path) -> Path:
    """A self-contained page with the comparison table; the best value of each metric column in bold."""
    out = Path(out)
    cols = _columns(rows)
    best = {}
    for key, _, _, higher in cols if not _warnings(rows) else []:  # no "best" across different data
        values = [r[key] for r in rows if r.get(key) is not None]
        if len(values) > 1:
            best[key] = max(values) if higher else min(values)
    for r in rows:
        r["report_link"] = os.path.relpath(r["report"], out.resolve().parent) if r["report"] else None
    html = render("compare.html.j2", {
        "title": f"tlearn compare: {len(rows)} runs", "style": STYLE, "rows": rows, "cols": cols, "best": best,
        "warnings": _warnings(rows), "version": __version__,
        "generated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    })
    atomic_write_text(out, html)
    return out
