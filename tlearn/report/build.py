"""RUN/report.html: one self-contained page that says where a run is right and wrong and whether to trust it."""
from __future__ import annotations

import logging
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from .._version import __version__
from ..constants import REPORT_HEATMAPS
from ..errors import TlearnError
from ..evaluate.binary import DEFAULT_THRESHOLD, binary_curves, operating_point, youden_threshold
from ..evaluate.intervals import add_intervals
from ..evaluate.metrics import (
    classification_metrics,
    confusion_counts,
    most_confused,
    per_class_metrics,
    reliability_bins,
    row_normalised,
)
from ..files import atomic_write_text
from . import plots
from .contents import RunContents, load_run_contents
from .findings import copy_free_rows, findings_lines
from .gallery import confidently_wrong
from .heatmaps import heatmap_gallery
from .html import render, render_text
from .rank import RANK_TABLE, report_rank_view
from .multilabel import multilabel_view
from .search import search_view
from .templates import STYLE

log = logging.getLogger("tlearn")

LARGE_MATRIX = 12  # above this many classes the confusion matrix uses compact cells and numbered columns
GALLERY_PER_SPLIT = 12


def _fmt_seconds(s: float | None) -> str:
    if s is None:
        return "–"
    return f"{s:.1f} s" if s < 120 else f"{s / 60:.1f} min"


def _fmt_bytes(n: int | None) -> str:
    if n is None:
        return "–"
    return f"{n / 1e6:.1f} MB" if n >= 1e6 else f"{n / 1e3:.0f} kB"


def _task_text(classes: list[str], multilabel: bool = False) -> str:
    if multilabel:
        return f"multi-label task, {len(classes)} labels" + (f" ({', '.join(classes)})" if len(classes) <= 5 else "")
    if len(classes) <= 5:
        return f"{len(classes)}-class task ({', '.join(classes)})"
    return f"{len(classes)}-class task"


def _metric_rows(rc: RunContents, multilabel: dict | None = None) -> list[dict]:
    """One row per split: metrics.json's block where it has one (the numbers fit printed), else from the CSV
    (a multi-label run: the per-label view's blocks)."""
    if multilabel is not None:
        rows = [{"split": "train", "source": "metrics.json", "note": "training data: optimistic",
                 **rc.split_metrics("train")}] if rc.split_metrics("train") else []
        return rows + [{"split": s, **b} for s, b in multilabel["blocks"].items()]
    rows = []
    names = [s for s in ("train",) if rc.split_metrics(s)] + [s for s in rc.splits]
    names += [s for s in ("val", "test") if rc.split_metrics(s) and s not in names]
    for split in dict.fromkeys(names):
        block = rc.split_metrics(split)
        source = "metrics.json"
        table = rc.predictions.get(split)
        if block is None and table is not None:
            labelled = table.labelled
            if not len(labelled):
                rows.append({"split": split, "n": 0, "source": f"{len(table)} unlabelled images"})
                continue
            block = add_intervals(classification_metrics(labelled.labels, labelled.probs), labelled.labels,
                                  labelled.probs, labelled.groups)
            source = f"predictions/{split}.csv"
        if block:
            note = "training data: optimistic" if split == "train" else ""
            rows.append({"split": split, "source": source, "note": note, **block})
    return rows


def _ci_note(rows: list[dict]) -> str:
    """How the intervals shown were computed ('' when no row has one)."""
    rows = [r for r in rows if r.get("ci95")]
    if not rows:
        return ""
    units = sorted({"groups (patients)" if r.get("ci_unit") == "group" else "images" for r in rows})
    resamples = sorted({r.get("ci_resamples") for r in rows if r.get("ci_resamples")})
    return (f"bootstrap 95% interval: percentile, {'/'.join(str(n) for n in resamples)} resamples of "
            f"{' or '.join(units)}")


def _headline(rows: list[dict]) -> dict | None:
    by_split = {r["split"]: r for r in rows if r.get("n")}
    for split in ("test", "val"):
        if split in by_split and "accuracy" in by_split[split]:
            return by_split[split]
    return None


def _cm_cell(count: int, rate: float, diagonal: bool) -> dict:
    alpha = 0.0 if count == 0 else max(rate, 0.08)
    rgb = "37, 99, 235" if diagonal else "220, 38, 38"
    return {"count": int(count), "rate": rate, "bg": f"rgba({rgb}, {alpha:.2f})",
            "fg": "#ffffff" if alpha > 0.55 else "#111827"}


def _confusion_view(split: str, labels: np.ndarray, probs: np.ndarray, classes: list[str]) -> dict:
    counts = confusion_counts(labels, probs, len(classes))
    rates = row_normalised(counts)
    cells = [[_cm_cell(counts[i, j], float(rates[i, j]), i == j) for j in range(len(classes))]
             for i in range(len(classes))]
    return {"split": split, "cells": cells, "row_totals": counts.sum(1).tolist(),
            "col_totals": counts.sum(0).tolist(), "n": int(counts.sum()),
            "confused": most_confused(counts, classes, top=10)}


def _f1_colour(f1: float) -> str:
    return f"hsl({120 * f1:.0f}, 65%, 88%)"


def _per_class_view(tables: dict, classes: list[str]) -> dict:
    by_split = {split: per_class_metrics(t.labels, t.probs, classes) for split, t in tables.items()}
    rows = []
    for k, name in enumerate(classes):
        cells = []
        for split in tables:
            r = by_split[split][k]
            cells.append({**r, "f1_bg": _f1_colour(r["f1"]) if r["support"] else "transparent"})
        rows.append({"index": k, "class": name, "cells": cells})
    return {"splits": list(tables), "rows": rows}


def _binary_view(tables: dict, classes: list[str], positive: int) -> dict | None:
    usable = {s: t for s, t in tables.items() if len(np.unique(t.labels)) == 2}
    if len(classes) != 2 or not usable:
        return None
    y = {s: (t.labels == positive).astype(np.int64) for s, t in usable.items()}
    score = {s: t.probs[:, positive] for s, t in usable.items()}
    curves = {s: binary_curves(y[s], score[s]) for s in usable}
    at_default = {s: operating_point(y[s], score[s], DEFAULT_THRESHOLD) for s in usable}
    rows = [{"split": s, "rule": f"p({classes[positive]}) ≥ {DEFAULT_THRESHOLD:g} (the model's decision)",
             "optimistic": False, **at_default[s]} for s in usable]
    chosen = None
    if "val" in usable:
        chosen = youden_threshold(y["val"], score["val"])
        for s in usable:
            rows.append({"split": s, "rule": f"p ≥ {chosen:.3f} (Youden's J on val)", "optimistic": s == "val",
                         **operating_point(y[s], score[s], chosen)})
    figure = plots.roc_pr_curves(curves, at_default, classes[positive])
    return {"positive": classes[positive], "negative": classes[1 - positive], "plot": plots.to_data_uri(figure),
            "rows": rows, "chosen": chosen,
            "auroc": {s: c.auroc for s, c in curves.items()}, "ap": {s: c.average_precision for s, c in curves.items()}}


def _summary(rc: RunContents, headline: dict | None) -> dict:
    run = rc.sections
    return {
        "task": _task_text(rc.classes, run.task.multilabel),
        "data": run.data.root,
        "counts": " / ".join(f"{k} {v}" for k, v in run.data.counts.items() if v) or "–",
        "backbone": run.backbone.name,
        "weights": run.backbone.weights,
        "input_size": run.backbone.data_config.get("input_size"),
        "strategy": run.strategy.name or "–",
        "train_time": _fmt_seconds(rc.metrics.get("train_seconds")),
        "model_size": _fmt_bytes(rc.model_bytes),
        "params": rc.metrics.get("params"),
        "created": rc.config.get("created", "–"),
        "device": f"{run.device}, {run.precision}",
        "headline": headline,
    }


def _config_items(rc: RunContents) -> list[tuple[str, str]]:
    run = rc.sections
    backbone = run.backbone
    strategy = {k: v for k, v in run.strategy.details.items()
                if not isinstance(v, (dict, list))}  # nested settings: see config.yaml
    items = [
        ("data", str(run.data.root)),
        ("validation", str(run.data.val_source)),
        ("backbone", f"{backbone.name} ({backbone.weights}, {backbone.weights_origin or ''})"),
        ("weights sha256", str(backbone.weights_sha256 or "–")),
        ("strategy", f"{run.strategy.name}: " + ", ".join(f"{k}={v}" for k, v in strategy.items())),
        ("seed", str(run.fit.seed)),
        ("device / precision", f"{run.device} / {run.precision}"),
        ("created", str(rc.config.get("created", "–"))),
        ("versions", ", ".join(f"{k} {v}" for k, v in rc.config.get("versions", {}).items())),
    ]
    return items


def _distillation_view(metrics: dict) -> dict | None:
    """metrics.json's distillation block (tlearn distill): teacher / distilled / alone per split, costs; or None."""
    block = metrics.get("distillation")
    if not isinstance(block, dict):
        return None
    rows = []
    for split, fig in [(block.get("split", "val"), block)] + [(s, block[s]) for s in ("val", "test")
                                                             if isinstance(block.get(s), dict)]:
        alone = fig.get("student_alone_accuracy")
        rows.append({"split": split, "teacher": fig.get("teacher_accuracy"), "distilled": fig.get("student_accuracy"),
                     "alone": alone, "gain": None if alone is None else 100 * (fig["student_accuracy"] - alone)})
    seconds = {k.replace("_", " "): _fmt_seconds(v) for k, v in (block.get("seconds") or {}).items() if v}
    views = block.get("stored_views") if isinstance(block.get("stored_views"), dict) else None
    budget = block.get("budget") if isinstance(block.get("budget"), dict) else None
    return {"rows": rows, "recipe": block.get("recipe", "hinton"), "seconds": seconds, "views": views,
            "budget_minutes": None if budget is None else budget.get("budget_seconds", 0) / 60.0,
            **{k: block.get(k) for k in ("teacher_ms_batch1", "student_ms_batch1", "speedup_batch1",
                                         "teacher_input_size", "student_input_size", "unlabeled_images")}}


def _ranking_view(config: dict) -> dict | None:
    """config.yaml's rank section (fit --backbone auto) as the table the report shows, or None."""
    view = report_rank_view(config)
    return None if view is None else {**view, "table": render_text(RANK_TABLE, {"rank": view})}


def build_report(run_dir: str | Path, positive_class: str | None = None, heatmaps: int = REPORT_HEATMAPS) -> str:
    """The HTML text of a run's report (see write_report); heatmaps: images in "Where the model looks" (0: none)."""
    rc = load_run_contents(run_dir)
    classes = rc.classes
    if positive_class is not None and positive_class not in classes:
        raise TlearnError(f"--positive {positive_class!r} is not one of the run's classes {classes}.")
    positive = classes.index(positive_class) if positive_class is not None else 1
    multilabel = multilabel_view(rc)
    labelled = {s: rc.predictions[s].labelled for s in rc.splits if len(rc.predictions[s].labelled)}
    unlabelled = [s for s in rc.splits if s not in labelled]
    if multilabel is not None:  # label sets: no confusion matrix, top-label calibration or gallery of mistakes
        labelled, unlabelled = {}, [s for s in rc.splits if s not in multilabel["splits"]]

    metric_rows = _metric_rows(rc, multilabel)
    headline = _headline(metric_rows)
    metric_rows += copy_free_rows(rc.metrics)  # beside each held-out figure: the same without copies of train
    confusion = [_confusion_view(s, t.labels, t.probs, classes) for s, t in labelled.items()]
    # The split a reader judges the model by first (test, else val) is shown open; others folded.
    main_split = next((s for s in ("test", "val") if s in labelled), next(iter(labelled), None))
    calibration = None
    if labelled:
        bins = {s: reliability_bins(t.labels, t.probs) for s, t in labelled.items()}
        calibration = {"plot": plots.to_data_uri(plots.reliability_diagram(bins, len(classes))),
                       "ece": {s: b.ece for s, b in bins.items()}}
    best_epoch = rc.sections.strategy.details.get("best_epoch")
    curves_fig = plots.learning_curves(rc.history, best_epoch if isinstance(best_epoch, (int, float)) else None)
    history_keys = list(dict.fromkeys(k for row in rc.history for k in row))
    gallery = {s: confidently_wrong(rc.predictions[s], GALLERY_PER_SPLIT) for s in labelled}
    errors = {s: int((t.predicted != t.labels).sum()) for s, t in labelled.items()}

    view = {
        "title": f"tlearn report: {rc.name}",
        "style": STYLE,
        "gallery_limit": GALLERY_PER_SPLIT,
        "run": rc,
        "run_path": str(rc.path),
        "generated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "version": __version__,
        "summary": _summary(rc, headline),
        "problems": rc.problems,
        "findings": findings_lines(rc.metrics),  # leakage, recipe, the probe's advice
        "unlabelled": unlabelled,
        "metric_rows": metric_rows,
        "auroc_key": "auroc" if len(classes) == 2 or multilabel is not None else (
            "auroc_macro" if any("auroc_macro" in r for r in metric_rows) else None),
        "ci_note": _ci_note(metric_rows),
        "binary_task": len(classes) == 2 or multilabel is not None,  # multi-label: the AUROC column is macro
        "multilabel": multilabel,
        "no_predictions": ("Not drawn for a multi-label run: each label is its own yes/no decision (see Per label)."
                           if multilabel is not None else "No labelled predictions saved."),
        "per_class": _per_class_view(labelled, classes) if labelled else None,
        "confusion": confusion,
        "main_split": main_split,
        "large_matrix": len(classes) > LARGE_MATRIX,
        "classes": classes,
        "calibration": calibration,
        "binary": _binary_view(labelled, classes, positive) if labelled and multilabel is None else None,
        "curves_plot": plots.to_data_uri(curves_fig) if curves_fig is not None else None,
        "history": rc.history,
        "history_keys": history_keys,
        "gallery": gallery,
        "errors": errors,
        "heatmaps": heatmap_gallery(rc, heatmaps) if multilabel is None else None,  # its picks assume one label
        "skipped": rc.metrics.get("skipped", []),
        "search": search_view(rc.config),
        "ranking": _ranking_view(rc.config),
        "distillation": _distillation_view(rc.metrics),
        "config_items": _config_items(rc),
        "config_text": rc.config_text,
    }
    return render("report.html.j2", view)


def write_report(run_dir: str | Path, out: str | Path | None = None, positive_class: str | None = None,
                 heatmaps: int = REPORT_HEATMAPS) -> Path:
    """Write RUN/report.html (or OUT): summary, metrics, per-class table, confusion matrix, calibration,
    ROC/PR for two classes, confidently wrong images, where the model looks (up to `heatmaps` images),
    learning curves, skipped files and the config."""
    path = Path(out) if out is not None else Path(run_dir) / "report.html"
    atomic_write_text(path, build_report(run_dir, positive_class, heatmaps))
    return path


def write_report_safely(run_dir: str | Path) -> Path | None:
    """write_report for the end of training: a failure is logged, never raised, so no trained run is lost."""
    try:
        path = write_report(run_dir)
    except Exception as exc:  # noqa: BLE001 - the run is already saved; the report is a convenience
        log.error("report: could not write %s/report.html (%s: %s); the run itself is complete. "
                  "Retry with `tlearn report %s`.", run_dir, type(exc).__name__, exc, run_dir)
        return None
    log.info("report written to %s", path)
    return path

