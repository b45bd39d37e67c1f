"""Two-class evaluation: ROC and precision-recall curves, and the operating point a clinician asks about.

The positive class is the second output (index 1) unless told otherwise; classes.json is sorted by folder
name, so e.g. NORMAL/PNEUMONIA gives PNEUMONIA as positive.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score, roc_curve

DEFAULT_THRESHOLD = 0.5  # the argmax decision of a two-class softmax


@dataclass(frozen=True)
class BinaryCurves:
    """ROC (fpr, tpr) and precision-recall points, with their areas."""

    fpr: np.ndarray
    tpr: np.ndarray
    roc_thresholds: np.ndarray
    precision: np.ndarray
    recall: np.ndarray
    auroc: float
    average_precision: float
    prevalence: float  # fraction of positives: the PR curve of a coin flip


def binary_curves(y_true: np.ndarray, p_positive: np.ndarray) -> BinaryCurves:
    """ROC and PR curves of scores p_positive against y_true in {0, 1} (both classes must be present)."""
    y = np.asarray(y_true, dtype=np.int64)
    p = np.asarray(p_positive, dtype=np.float64)
    if len(np.unique(y)) < 2:
        raise ValueError("ROC and precision-recall curves need both classes among the labels")
    fpr, tpr, thresholds = roc_curve(y, p)
    precision, recall, _ = precision_recall_curve(y, p)
    return BinaryCurves(fpr=fpr, tpr=tpr, roc_thresholds=thresholds, precision=precision, recall=recall,
                        auroc=float(roc_auc_score(y, p)), average_precision=float(average_precision_score(y, p)),
                        prevalence=float(y.mean()))


def operating_point(y_true: np.ndarray, p_positive: np.ndarray, threshold: float = DEFAULT_THRESHOLD) -> dict:
    """Counts and rates when 'positive' means p_positive >= threshold.

    sensitivity = TP / (TP + FN) (recall of positives), specificity = TN / (TN + FP),
    ppv = TP / (TP + FP), npv = TN / (TN + FN); a rate with an empty denominator is NaN.
    """
    y = np.asarray(y_true, dtype=np.int64)
    called = np.asarray(p_positive, dtype=np.float64) >= threshold
    tp = int((called & (y == 1)).sum())
    fn = int((~called & (y == 1)).sum())
    tn = int((~called & (y == 0)).sum())
    fp = int((called & (y == 0)).sum())

    def rate(a: int, b: int) -> float:
        return a / (a + b) if a + b else float("nan")

    return {"threshold": float(threshold), "tp": tp, "fn": fn, "tn": tn, "fp": fp,
            "sensitivity": rate(tp, fn), "specificity": rate(tn, fp), "ppv": rate(tp, fp), "npv": rate(tn, fn)}


def youden_threshold(y_true: np.ndarray, p_positive: np.ndarray) -> float:
    """The threshold that maximises sensitivity + specificity - 1 (Youden's J) on these labels.

    Choose it on validation data and apply it to test data; choosing it on test overstates both rates.
    """
    fpr, tpr, thresholds = roc_curve(np.asarray(y_true, dtype=np.int64), np.asarray(p_positive, dtype=np.float64))
    finite = np.isfinite(thresholds)
    j = np.where(finite, tpr - fpr, -np.inf)
    return float(thresholds[int(np.argmax(j))])
