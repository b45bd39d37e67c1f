"""Classification metrics from true labels and predicted class probabilities.

Everything here is computed from (y_true, probs) arrays, so the same numbers come out of `tlearn fit`,
`tlearn evaluate` and the HTML report; confusion_metrics (from summed counts, shared with the training loop's
validation) lives in tlearn.confusion and is re-exported here.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.metrics import (
    confusion_matrix,
    log_loss,
    precision_recall_fscore_support,
    roc_auc_score,
)

from ..confusion import confusion_metrics


@dataclass(frozen=True)
class ReliabilityBins:
    """Top-label calibration on equal-width confidence bins (the data of a reliability diagram).

    accuracy and confidence are NaN for empty bins; ece weights |accuracy - confidence| by bin size.
    """

    edges: np.ndarray  # (bins + 1,)
    counts: np.ndarray  # (bins,) images per bin
    accuracy: np.ndarray  # (bins,) fraction correct among the bin's images
    confidence: np.ndarray  # (bins,) mean top probability among the bin's images

    @property
    def ece(self) -> float:
        total = self.counts.sum()
        if total == 0:
            return 0.0
        filled = self.counts > 0
        gap = np.abs(self.accuracy[filled] - self.confidence[filled])
        return float((self.counts[filled] / total * gap).sum())


def reliability_bins(y_true: np.ndarray, probs: np.ndarray, bins: int = 15) -> ReliabilityBins:
    """Bin images by their top probability (bins are (lo, hi]) and compare accuracy with confidence."""
    y_true = np.asarray(y_true)
    probs = np.asarray(probs, dtype=np.float64)
    confidence = probs.max(1)
    correct = (probs.argmax(1) == y_true).astype(np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    # (lo, hi] bins: index = ceil(conf * bins) - 1, with conf == 0 going to the first bin.
    index = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, bins - 1)
    counts = np.bincount(index, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        accuracy = np.bincount(index, weights=correct, minlength=bins) / counts
        mean_conf = np.bincount(index, weights=confidence, minlength=bins) / counts
    return ReliabilityBins(edges=edges, counts=counts, accuracy=accuracy, confidence=mean_conf)


def expected_calibration_error(y_true: np.ndarray, probs: np.ndarray, bins: int = 15) -> float:
    """Mean |accuracy - confidence| over equal-width confidence bins, weighted by bin size."""
    return reliability_bins(y_true, probs, bins).ece


def classification_metrics(y_true: np.ndarray, probs: np.ndarray) -> dict:
    """accuracy, balanced_accuracy, macro_f1, loss (log loss), ece, n; auroc for two-class tasks."""
    y_true = np.asarray(y_true, dtype=np.int64)
    probs = np.asarray(probs, dtype=np.float64)
    if len(y_true) == 0:
        return {"n": 0}
    num_classes = probs.shape[1]
    labels = list(range(num_classes))
    present = sorted(set(y_true.tolist()))
    metrics = {
        **confusion_metrics(confusion_counts(y_true, probs, num_classes)),
        "loss": float(log_loss(y_true, np.clip(probs, 1e-12, 1.0), labels=labels)),
        "ece": expected_calibration_error(y_true, probs),
        "n": int(len(y_true)),
    }
    if num_classes == 2 and len(present) == 2:
        metrics["auroc"] = float(roc_auc_score(y_true, probs[:, 1]))
    return metrics


def per_class_metrics(y_true: np.ndarray, probs: np.ndarray, classes: list[str]) -> list[dict]:
    """One row per class (in output order): class, precision, recall, f1, support, predicted (count).

    A class never predicted has precision 0; a class absent from y_true has recall 0 and support 0.
    """
    y_true = np.asarray(y_true, dtype=np.int64)
    pred = np.asarray(probs).argmax(1)
    labels = list(range(len(classes)))
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, pred, labels=labels, zero_division=0)
    predicted = np.bincount(pred, minlength=len(classes))
    return [
        {"class": name, "precision": float(precision[k]), "recall": float(recall[k]), "f1": float(f1[k]),
         "support": int(support[k]), "predicted": int(predicted[k])}
        for k, name in enumerate(classes)
    ]


def confusion_counts(y_true: np.ndarray, probs: np.ndarray, num_classes: int) -> np.ndarray:
    """(K, K) counts: row = true class, column = predicted class."""
    pred = np.asarray(probs).argmax(1)
    return confusion_matrix(np.asarray(y_true, dtype=np.int64), pred, labels=list(range(num_classes)))


def row_normalised(counts: np.ndarray) -> np.ndarray:
    """Each row divided by its total (the recall of the true class on the diagonal); empty rows stay 0."""
    counts = np.asarray(counts, dtype=np.float64)
    totals = counts.sum(1, keepdims=True)
    return np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)


def most_confused(counts: np.ndarray, classes: list[str], top: int = 10) -> list[dict]:
    """The largest off-diagonal cells: which true class is most often taken for which other class."""
    counts = np.asarray(counts)
    rates = row_normalised(counts)
    off = [(int(counts[i, j]), i, j) for i in range(len(classes)) for j in range(len(classes))
           if i != j and counts[i, j] > 0]
    off.sort(key=lambda t: (-t[0], -rates[t[1], t[2]], t[1], t[2]))
    return [{"true": classes[i], "predicted": classes[j], "count": n, "rate": float(rates[i, j])}
            for n, i, j in off[:top]]
