"""The report's per-label view of a multi-label run: summaries and one row per label, per split."""
from __future__ import annotations

from ..errors import TlearnError
from ..evaluate.multilabel import multilabel_metrics, read_multilabel_predictions
from ..runs import layout as run_layout
from .contents import RunContents, split_sort_key


def _auroc_colour(auroc: float | None) -> str:
    """0.5 (chance) red to 1.0 green; no colour where AUROC is undefined."""
    if auroc is None:
        return "transparent"
    return f"hsl({240 * max(0.0, auroc - 0.5):.0f}, 65%, 88%)"


def split_blocks(rc: RunContents) -> dict[str, dict]:
    """split -> multi-label metrics: metrics.json's (the numbers fit printed), else from predictions/<split>.csv
    at the run's thresholds."""
    thresholds = run_layout.task_thresholds(rc.config, rc.classes)
    blocks = {}
    for split in sorted(set(rc.splits) | {s for s in ("val", "test") if rc.split_metrics(s)}, key=split_sort_key):
        block = rc.split_metrics(split)
        if block is not None and "per_label" in block:
            blocks[split] = {**block, "source": "metrics.json"}
            continue
        try:
            table = read_multilabel_predictions(rc.path / run_layout.PREDICTIONS / f"{split}.csv", rc.classes)
        except TlearnError as exc:
            rc.problems.append(str(exc))
            continue
        keep = table.labelled
        if keep.any():
            blocks[split] = {**multilabel_metrics(table.labels[keep], table.probs[keep], rc.classes, thresholds),
                             "source": f"predictions/{split}.csv"}
    return blocks


def multilabel_view(rc: RunContents) -> dict | None:
    """None for a single-label run."""
    task = rc.config.get("task") or {}
    if task.get("kind") != "multilabel":
        return None
    thresholds = run_layout.task_thresholds(rc.config, rc.classes)
    blocks = {s: b for s, b in split_blocks(rc).items() if b.get("n")}
    rows = []
    for j, name in enumerate(rc.classes):
        cells = []
        for split, block in blocks.items():
            r = block["per_label"][j]
            cells.append({**r, "n": block["n"], "bg": _auroc_colour(r["auroc"])})
        rows.append({"label": name, "threshold": thresholds[j], "cells": cells})
    source = task.get("threshold_source", "?")
    return {"splits": list(blocks), "rows": rows, "blocks": blocks, "threshold_source": source,
            "val_optimistic": str(source).startswith("val") and "val" in blocks,
            "summary": [{"split": s, **b} for s, b in blocks.items()]}
