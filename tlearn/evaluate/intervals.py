"""Bootstrap 95% confidence intervals of accuracy, balanced accuracy and AUROC.

Percentile intervals over BOOTSTRAP_RESAMPLES resamples, seeded. Resampling draws images with replacement, or,
when the images carry groups (patients), whole groups with replacement (the cluster bootstrap): images of one
patient are correlated, so resampling them one by one would give intervals that are too narrow.

A resample is a weight per image (how often it was drawn), so every statistic is a weighted sum over the same
arrays, computed for a block of resamples at once: 1000 resamples of 10,000 images take well under a second.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..constants import BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED
from ..data.groups import unit_ids

LEVEL = 0.95
BLOCK = 100  # resamples per block: bounds memory at BLOCK x n weights
MULTICLASS_AUROC_MAX = 20  # classes up to which macro one-vs-rest AUROC gets an interval


def _resample_weights(rng: np.random.Generator, units: np.ndarray, n_units: int, count: int) -> np.ndarray:
    """(count, n_images) draw counts: units drawn with replacement, each image weighted by its unit's count."""
    draws = rng.integers(0, n_units, size=(count, n_units))
    flat = (draws + n_units * np.arange(count)[:, None]).ravel()
    per_unit = np.bincount(flat, minlength=count * n_units).reshape(count, n_units)
    return per_unit[:, units].astype(np.float64)


class _WeightedAuroc:
    """AUROC of fixed scores under per-image weights: the weighted chance that a positive outscores a negative
    (ties count one half), from one sort of the scores."""

    def __init__(self, positive: np.ndarray, scores: np.ndarray):
        order = np.argsort(scores, kind="mergesort")
        s = scores[order]
        self.order = order
        self.pos = positive[order]
        self.first = np.searchsorted(s, s, side="left")[self.pos]  # each positive's block of tied scores
        self.last = np.searchsorted(s, s, side="right")[self.pos]

    def __call__(self, weights: np.ndarray) -> np.ndarray:
        w = weights[:, self.order]
        neg = np.where(self.pos, 0.0, w)
        cum = np.concatenate([np.zeros((len(w), 1)), np.cumsum(neg, axis=1)], axis=1)
        below, upto = cum[:, self.first], cum[:, self.last]
        wp = w[:, self.pos]
        total_pos, total_neg = wp.sum(1), cum[:, -1]
        with np.errstate(invalid="ignore", divide="ignore"):
            return (wp * (below + 0.5 * (upto - below))).sum(1) / (total_pos * total_neg)


def weighted_auroc(y_true: np.ndarray, scores: np.ndarray, weights: np.ndarray | None = None) -> float:
    """AUROC of scores for y_true == 1 with per-image weights (all 1: the ordinary AUROC)."""
    y = np.asarray(y_true) == 1
    w = np.ones((1, len(y))) if weights is None else np.asarray(weights, dtype=np.float64)[None, :]
    return float(_WeightedAuroc(y, np.asarray(scores, dtype=np.float64))(w)[0])


def bootstrap_statistics(y_true: np.ndarray, probs: np.ndarray, groups: Sequence[str | None] | None = None, *,
                         resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED) -> dict[str, np.ndarray]:
    """metric -> (resamples,) values over bootstrap resamples (NaN where a resample cannot define it, e.g. AUROC
    without a positive); resampling whole groups when groups are given. AUROC is 'auroc' for two classes and
    'auroc_macro' (the mean one-vs-rest AUROC) for up to MULTICLASS_AUROC_MAX classes, all present."""
    y = np.asarray(y_true, dtype=np.int64)
    probs = np.asarray(probs, dtype=np.float64)
    n, k = probs.shape
    units = unit_ids(groups) if groups is not None else np.arange(n)
    n_units = int(units.max()) + 1
    onehot = np.zeros((n, k))
    onehot[np.arange(n), y] = 1.0
    correct = (probs.argmax(1) == y).astype(np.float64)
    # one product per block gives every weighted count: [images, correct, per-class support, per-class hits]
    columns = np.concatenate([np.ones((n, 1)), correct[:, None], onehot, onehot * correct[:, None]], axis=1)
    present = np.bincount(y, minlength=k) > 0
    aurocs = []
    if k == 2 and present.all():
        aurocs = [_WeightedAuroc(y == 1, probs[:, 1])]
    elif 2 < k <= MULTICLASS_AUROC_MAX and present.all():
        aurocs = [_WeightedAuroc(y == c, probs[:, c]) for c in range(k)]
    rng = np.random.default_rng(seed)
    out: dict[str, list[np.ndarray]] = {"accuracy": [], "balanced_accuracy": []}
    auroc_name = "auroc" if k == 2 else "auroc_macro"
    if aurocs:
        out[auroc_name] = []
    for start in range(0, resamples, BLOCK):
        w = _resample_weights(rng, units, n_units, min(BLOCK, resamples - start))
        sums = w @ columns
        out["accuracy"].append(sums[:, 1] / sums[:, 0])
        support, hit = sums[:, 2:2 + k], sums[:, 2 + k:]
        with np.errstate(invalid="ignore", divide="ignore"):
            recall = np.where(support > 0, hit / support, np.nan)[:, present]
            out["balanced_accuracy"].append(np.nanmean(recall, axis=1))
            if aurocs:  # macro one-vs-rest for more than two classes
                out[auroc_name].append(np.mean([a(w) for a in aurocs], axis=0))
    return {name: np.concatenate(values) for name, values in out.items()}


def percentile_interval(values: np.ndarray) -> list[float] | None:
    """The LEVEL percentile interval of bootstrap values; None when over a tenth of the resamples left the
    statistic undefined (e.g. AUROC without a positive): no honest interval then."""
    finite = values[np.isfinite(values)]
    if len(finite) < 0.9 * len(values):
        return None
    tail = 100 * (1 - LEVEL) / 2
    lo, hi = np.percentile(finite, [tail, 100 - tail])
    return [round(float(lo), 6), round(float(hi), 6)]


def bootstrap_intervals(y_true: np.ndarray, probs: np.ndarray, groups: Sequence[str | None] | None = None, *,
                        resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED) -> dict:
    """{"ci95": {metric: [lo, hi]}, "ci_unit": "image"|"group", "ci_resamples": B, "ci_units": n}: percentile
    intervals; groups (one per image, None for an image without one) switch to the cluster bootstrap."""
    y = np.asarray(y_true)
    if len(y) == 0:
        return {}
    grouped = groups is not None and any(g is not None for g in groups)
    stats = bootstrap_statistics(y, probs, groups if grouped else None, resamples=resamples, seed=seed)
    ci = {name: interval for name, values in stats.items()
          if (interval := percentile_interval(values)) is not None}
    n_units = len(set(unit_ids(groups).tolist())) if grouped else len(y)
    return {"ci95": ci, "ci_unit": "group" if grouped else "image", "ci_resamples": resamples, "ci_units": n_units}


def add_intervals(metrics: dict, y_true: np.ndarray, probs: np.ndarray,
                  groups: Sequence[str | None] | None = None) -> dict:
    """metrics (classification_metrics of the same arrays) with their bootstrap intervals, and for more than two
    classes the macro one-vs-rest AUROC the interval is about."""
    probs = np.asarray(probs, dtype=np.float64)
    if not len(probs):
        return metrics
    y = np.asarray(y_true, dtype=np.int64)
    k = probs.shape[1]
    if 2 < k <= MULTICLASS_AUROC_MAX and len(np.unique(y)) == k:
        metrics["auroc_macro"] = float(np.mean([weighted_auroc(y == c, probs[:, c]) for c in range(k)]))
    metrics.update(bootstrap_intervals(y, probs, groups))
    return metrics


def add_multilabel_intervals(metrics: dict, y_true: np.ndarray, probs: np.ndarray,
                             groups: Sequence[str | None] | None = None, *, resamples: int = BOOTSTRAP_RESAMPLES,
                             seed: int = BOOTSTRAP_SEED) -> dict:
    """multilabel_metrics of the same arrays with bootstrap intervals of each label's AUROC ('auroc_ci95' in its
    per_label row) and of the macro AUROC (ci95), resampling images or, with groups, whole groups."""
    y = np.asarray(y_true, dtype=np.int64)
    p = np.asarray(probs, dtype=np.float64)
    if not len(p):
        return metrics
    grouped = groups is not None and any(g is not None for g in groups)
    units = unit_ids(groups) if grouped else np.arange(len(y))
    n_units = int(units.max()) + 1
    defined = [j for j in range(y.shape[1]) if 0 < y[:, j].sum() < len(y)]
    aurocs = {j: _WeightedAuroc(y[:, j] == 1, p[:, j]) for j in defined}
    rng = np.random.default_rng(seed)
    values = {j: [] for j in defined}
    for start in range(0, resamples, BLOCK):
        w = _resample_weights(rng, units, n_units, min(BLOCK, resamples - start))
        for j, auroc in aurocs.items():
            values[j].append(auroc(w))
    per_label = {j: np.concatenate(v) for j, v in values.items()}
    for j, row in enumerate(metrics.get("per_label", [])):
        row["auroc_ci95"] = percentile_interval(per_label[j]) if j in per_label else None
    ci = {}
    if per_label:
        macro = percentile_interval(np.nanmean(np.stack(list(per_label.values())), axis=0))
        if macro is not None:
            ci["macro_auroc"] = ci["auroc"] = macro
    metrics.update({"ci95": ci, "ci_unit": "group" if grouped else "image", "ci_resamples": resamples,
                    "ci_units": n_units if grouped else len(y)})
    return metrics
