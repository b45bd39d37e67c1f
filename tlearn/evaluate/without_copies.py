"""Held-out figures without the images that have a copy in train: how much cross-split copies flatter a result.

The leakage check (tlearn.data.leakage) lists, per held-out split, every image with an exact or near copy in
train; the same figure on the rest says what the model does on images it has not seen in any form.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from ..confusion import confusion_metrics
from .metrics import confusion_counts


def _figures(labels: np.ndarray, probs: np.ndarray) -> dict:
    """accuracy and balanced accuracy as the run's own figures are computed (tlearn.confusion)."""
    if not len(labels):
        return {"n": 0, "accuracy": None, "balanced_accuracy": None}
    m = confusion_metrics(confusion_counts(labels, probs, probs.shape[1]))
    return {"n": int(len(labels)), "accuracy": round(m["accuracy"], 4),
            "balanced_accuracy": round(m["balanced_accuracy"], 4)}


def figures_without_copies(predictions: Mapping[str, tuple[Sequence, np.ndarray]],
                           copied: Mapping[str, Sequence[str]]) -> dict:
    """split -> {all: figures, without_copies: figures, copies: n} for each labelled held-out split with at least
    one image copied from train; predictions: split -> (samples, class probabilities) as evaluate_splits gives."""
    out = {}
    for split, (samples, probs) in predictions.items():
        flagged = set(copied.get(split) or ())
        if split == "train" or not flagged or probs is None or np.ndim(probs) != 2:
            continue
        labels = np.array([s.label for s in samples])
        keep = labels >= 0
        if not keep.any():
            continue
        probs = np.asarray(probs)
        clean = keep & np.array([str(s.path) not in flagged for s in samples])
        out[split] = {"all": _figures(labels[keep], probs[keep]),
                      "without_copies": _figures(labels[clean], probs[clean]),
                      "copies": int((keep & ~clean).sum())}
    return out
