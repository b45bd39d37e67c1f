"""Multi-label evaluation: each label is its own yes/no question, scored by a sigmoid probability.

Per label: AUROC, average precision, and sensitivity/specificity at a threshold chosen on val (Youden's J; on
train out-of-fold predictions when there is no val). Summaries: macro AUROC/AP (mean over labels), micro
AUROC/AP (all image-label pairs pooled), subset accuracy (every label of an image right) and Hamming loss
(fraction of image-label decisions wrong). The keys every split has (DESIGN.md) keep their meaning where it
carries over: `accuracy` is the subset accuracy, `balanced_accuracy` the mean over labels of
(sensitivity + specificity) / 2, `macro_f1` the mean per-label F1, `loss` the mean binary cross-entropy;
`auroc` is the macro AUROC.
"""
from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score

from ..errors import TlearnError
from ..files import spreadsheet_plain
from .binary import DEFAULT_THRESHOLD, operating_point, youden_threshold

ACCURACY_MEANING = "subset accuracy: the fraction of images whose every label is decided right at the thresholds"


def sigmoid(logits: np.ndarray) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64)
    return 0.5 * (1.0 + np.tanh(0.5 * z))  # = 1 / (1 + exp(-z)) without overflow warnings


def _both(y: np.ndarray) -> bool:
    return 0 < y.sum() < len(y)


def choose_thresholds(y_true: np.ndarray, probs: np.ndarray) -> list[float]:
    """Per label, the threshold maximising sensitivity + specificity - 1 on these labels (0.5 where a label
    has only positives or only negatives here)."""
    y, p = np.asarray(y_true), np.asarray(probs, dtype=np.float64)
    return [_youden_midpoint(y[:, k], p[:, k]) if _both(y[:, k]) else DEFAULT_THRESHOLD for k in range(p.shape[1])]


def _youden_midpoint(y: np.ndarray, p: np.ndarray) -> float:
    """Youden's threshold moved halfway down to the next lower score: the same calls on these images, but not
    on a score's edge, where a rounding difference (bf16 features, an exported graph) would flip the call."""
    t = min(youden_threshold(y, p), 1.0)
    below = p[p < t]
    return float((t + below.max()) / 2) if len(below) else float(t)


def _mean(values) -> float | None:
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


def _clean(x: float) -> float | None:
    return None if x is None or not np.isfinite(x) else float(x)


def multilabel_metrics(y_true: np.ndarray, probs: np.ndarray, classes: Sequence[str],
                       thresholds: Sequence[float] | None = None) -> dict:
    """Per-label and summary metrics of label probabilities; undefined values (a label without positives) are None."""
    y = np.asarray(y_true, dtype=np.int64)
    p = np.asarray(probs, dtype=np.float64)
    n, k = p.shape if p.ndim == 2 else (0, len(classes))
    if n == 0:
        return {"n": 0, "task": "multilabel"}
    thresholds = list(thresholds) if thresholds is not None else [DEFAULT_THRESHOLD] * k
    called = p >= np.asarray(thresholds)[None, :]
    per_label = []
    for j, name in enumerate(classes):
        op = operating_point(y[:, j], p[:, j], thresholds[j])
        tp, fp, fn = op["tp"], op["fp"], op["fn"]
        defined = _both(y[:, j])
        per_label.append({
            "label": name, "positives": int(y[:, j].sum()), "prevalence": float(y[:, j].mean()),
            "auroc": float(roc_auc_score(y[:, j], p[:, j])) if defined else None,
            "average_precision": float(average_precision_score(y[:, j], p[:, j])) if y[:, j].any() else None,
            "threshold": float(thresholds[j]), "predicted_positives": int(called[:, j].sum()),
            "sensitivity": _clean(op["sensitivity"]), "specificity": _clean(op["specificity"]),
            "ppv": _clean(op["ppv"]), "f1": 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else None,
        })
    clipped = np.clip(p, 1e-12, 1 - 1e-12)
    bce = float(-(y * np.log(clipped) + (1 - y) * np.log(1 - clipped)).mean())
    pooled = _both(y.ravel())
    balanced = [(r["sensitivity"] + r["specificity"]) / 2 for r in per_label
                if r["sensitivity"] is not None and r["specificity"] is not None]
    subset = float((called == y.astype(bool)).all(1).mean())
    tp_all = int((called & (y == 1)).sum())
    wrong = int((called != y.astype(bool)).sum())
    metrics = {
        "task": "multilabel",
        "accuracy": subset,
        "accuracy_means": ACCURACY_MEANING,
        "balanced_accuracy": _mean(balanced) if balanced else 0.0,
        "macro_f1": _mean(r["f1"] for r in per_label if r["positives"]) or 0.0,
        "loss": bce,
        "ece": pooled_calibration_error(y, p),
        "n": int(n),
        "auroc": _mean(r["auroc"] for r in per_label),
        "macro_auroc": _mean(r["auroc"] for r in per_label),
        "micro_auroc": float(roc_auc_score(y.ravel(), p.ravel())) if pooled else None,
        "macro_average_precision": _mean(r["average_precision"] for r in per_label),
        "micro_average_precision": float(average_precision_score(y.ravel(), p.ravel())) if y.any() else None,
        "micro_f1": 2 * tp_all / (2 * tp_all + wrong) if tp_all + wrong else None,
        "subset_accuracy": subset,
        "hamming_loss": wrong / y.size,
        "labels_per_image": float(y.sum(1).mean()),
        "per_label": per_label,
    }
    return metrics


def pooled_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = 15) -> float:
    """ECE of every image-label probability against its 0/1 truth (equal-width bins, weighted by size)."""
    y, p = np.asarray(y, dtype=np.float64).ravel(), np.asarray(p, dtype=np.float64).ravel()
    index = np.clip(np.ceil(p * bins).astype(int) - 1, 0, bins - 1)
    counts = np.bincount(index, minlength=bins)
    filled = counts > 0
    freq = np.bincount(index, weights=y, minlength=bins)[filled] / counts[filled]
    conf = np.bincount(index, weights=p, minlength=bins)[filled] / counts[filled]
    return float((counts[filled] / len(p) * np.abs(freq - conf)).sum())


def positive_labels(probs: np.ndarray, classes: Sequence[str], thresholds: Sequence[float]) -> list[list[str]]:
    """For each image, the labels whose probability reaches their threshold."""
    called = np.atleast_2d(probs) >= np.asarray(thresholds)[None, :]
    return [[c for c, on in zip(classes, row) if on] for row in called]


# ---- predictions/<split>.csv of a multi-label run ---------------------------------------------------------------
# path, label ('|'-joined true labels), predicted ('|'-joined labels at or above their thresholds), confidence
# (the highest label probability), p:<label>...: the single-label file's columns, so its readers do not break.
# An image labelled with none of the labels (the empty set) has NO_LABELS as its label; an unlabelled one "".
NO_LABELS = "(none)"

@dataclass
class MultiLabelTable:
    split: str
    paths: list[str]
    labels: np.ndarray  # (n, K) 0/1; rows of unlabelled images are all 0 and `labelled` is False
    probs: np.ndarray  # (n, K)
    labelled: np.ndarray  # (n,) bool
    classes: list[str]


def prediction_rows(samples: Sequence, probs: np.ndarray, classes: Sequence[str],
                    thresholds: Sequence[float]) -> list[list[str]]:
    called = positive_labels(probs, classes, thresholds)
    rows = []
    for s, p, on in zip(samples, probs, called):
        truth = ("|".join(classes[j] for j in s.labels) or NO_LABELS) if hasattr(s, "labels") else ""
        rows.append([str(s.path), truth, "|".join(on), f"{p.max():.6f}"] + [f"{x:.6f}" for x in p])
    return rows


def read_multilabel_predictions(path: str | Path, classes: Sequence[str]) -> MultiLabelTable:
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8", errors="surrogateescape") as f:
            reader = csv.reader(f)
            header = [spreadsheet_plain(c) for c in next(reader, None) or []]
            rows = [[spreadsheet_plain(c) for c in r] for r in reader if r]  # undo the quote before =, -...
    except OSError as exc:
        raise TlearnError(f"cannot read predictions file {path}: {exc.strerror or exc}") from exc
    cols = [i for i, name in enumerate(header) if name.startswith("p:")]
    if [header[i][2:] for i in cols] != list(classes):
        raise TlearnError(f"{path} does not hold this run's labels {list(classes)}; re-run `tlearn evaluate "
                          "--save-as`.")
    index = {c: j for j, c in enumerate(classes)}
    y = np.zeros((len(rows), len(classes)))
    labelled = np.zeros(len(rows), dtype=bool)
    for i, r in enumerate(rows):
        names = [n for n in r[1].split("|") if n and n != NO_LABELS] if len(r) > 1 else []
        labelled[i] = bool(r[1]) if len(r) > 1 else False
        for name in names:
            if name in index:
                y[i, index[name]] = 1
    probs = np.array([[float(r[i]) for i in cols] for r in rows]).reshape(len(rows), len(classes))
    return MultiLabelTable(path.stem, [r[0] for r in rows], y, probs, labelled, list(classes))
