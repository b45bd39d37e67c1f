"""Headline metrics from a confusion matrix of counts: the training loop's validation and tlearn.evaluate share them."""
from __future__ import annotations

import numpy as np


def confusion_metrics(counts: np.ndarray) -> dict:
    """accuracy, balanced_accuracy and macro_f1 from (K, K) counts (row = true, column = predicted class).

    Averages run over the classes present among the true labels, as scikit-learn's do; counts may be summed
    over processes (the training loop's validation under DDP) before this is called.
    """
    counts = np.asarray(counts, dtype=np.float64)
    n = counts.sum()
    tp = np.diag(counts)
    support, predicted = counts.sum(1), counts.sum(0)
    present = support > 0
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=present)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros_like(tp), where=(precision + recall) > 0)
    return {"accuracy": float(tp.sum() / n) if n else 0.0,
            "balanced_accuracy": float(recall[present].mean()) if present.any() else 0.0,
            "macro_f1": float(f1[present].mean()) if present.any() else 0.0}
