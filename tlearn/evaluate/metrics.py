"""Classification metrics from true labels and predicted class probabilities."""
from __future__ import annotations

import numpy as np
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score, log_loss, roc_auc_score


def expected_calibration_error(y_true: np.ndarray, probs: np.ndarray, bins: int = 15) -> float:
    """Mean |accuracy - confidence| over equal-width confidence bins, weighted by bin size."""
    confidence = probs.max(1)
    correct = probs.argmax(1) == y_true
    edges = np.linspace(0.0, 1.0, bins + 1)
    ece = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        in_bin = (confidence > lo) & (confidence <= hi)
        if in_bin.any():
            ece += in_bin.mean() * abs(correct[in_bin].mean() - confidence[in_bin].mean())
    return float(ece)


def classification_metrics(y_true: np.ndarray, probs: np.ndarray) -> dict:
    """accuracy, balanced_accuracy, macro_f1, loss (log loss), ece, n; auroc for two-class tasks."""
    y_true = np.asarray(y_true, dtype=np.int64)
    probs = np.asarray(probs, dtype=np.float64)
    if len(y_true) == 0:
        return {"n": 0}
    num_classes = probs.shape[1]
    pred = probs.argmax(1)
    labels = list(range(num_classes))
    present = sorted(set(y_true.tolist()))
    metrics = {
        "accuracy": float(accuracy_score(y_true, pred)),
        "balanced_accuracy": float(balanced_accuracy_score(y_true, pred)),
        "macro_f1": float(f1_score(y_true, pred, labels=present, average="macro", zero_division=0)),
        "loss": float(log_loss(y_true, np.clip(probs, 1e-12, 1.0), labels=labels)),
        "ece": expected_calibration_error(y_true, probs),
        "n": int(len(y_true)),
    }
    if num_classes == 2 and len(present) == 2:
        metrics["auroc"] = float(roc_auc_score(y_true, probs[:, 1]))
    return metrics
