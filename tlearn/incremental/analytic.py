"""The analytic head: a linear classifier solved in closed form from FeatureStatistics alone.

lda    shared-covariance Gaussian classes (linear discriminant analysis); the pooled covariance is shrunk
       towards a multiple of the identity by the Oracle Approximating Shrinkage rule (Chen et al. 2010), which
       needs only the covariance itself. Its logits are log posteriors: softmax probabilities mean something.
ridge  ridge regression on one-hot targets, lambda chosen by generalised cross-validation, whose residuals and
       degrees of freedom both follow from the statistics (eigenvalues of the centred Gram matrix). Its scores
       rank classes well but are not calibrated probabilities.

Both depend only on the summed statistics, so the head is the same whatever order the images or classes came
in, and equal to the head solved on all the data at once. The feature treatment of the first run is kept: its
affine part (the standardized mean and scale, the raw global scale) is derived from the same sums, so it too
is exactly the one-shot treatment.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..features.statistics import FeatureStatistics
from .config import DEFAULT_HEAD, HEADS
RIDGE_GRID = tuple(np.logspace(-4, 3, 29))  # lambdas, relative to the mean eigenvalue of the centred Gram


@dataclass
class AnalyticHead:
    """logits = weight @ h + bias, where h are the features in the statistics' space (raw, or l2 at sqrt(d))."""

    weight: np.ndarray  # (K, d)
    bias: np.ndarray  # (K,)
    details: dict = field(default_factory=dict)

    def logits(self, H: np.ndarray) -> np.ndarray:
        return np.asarray(H, dtype=np.float64) @ self.weight.T + self.bias


def treatment_affine(stats: FeatureStatistics) -> tuple[np.ndarray, np.ndarray]:
    """(mean, scale) of the feature treatment, as LinearProbe's FeatureTreatment would fit them on all the
    images the statistics summarise."""
    n, d = stats.total, stats.dim
    mean_sq = np.diag(stats.gram) / n
    if stats.treatment == "standardized":
        mean = stats.sums.sum(0) / n
        var = mean_sq - mean ** 2
        keep = var > 1e-12 * max(float(mean_sq.max()), 1e-300)  # a constant dimension: E[x^2] - m^2 is rounding
        return mean, np.where(keep, np.sqrt(np.where(keep, var, 1.0)), 1.0)
    if stats.treatment == "raw":
        return np.zeros(d), np.full(d, max(float(np.sqrt(mean_sq.mean())), 1e-12))
    return np.zeros(d), np.ones(d)


def solve_head(stats: FeatureStatistics, head: str = DEFAULT_HEAD) -> AnalyticHead:
    """The closed-form head over stats.classes; classes without images are never predicted."""
    if head not in HEADS:
        raise ValueError(f"analytic head {head!r}: choose one of {', '.join(HEADS)}")
    present = stats.counts > 0
    if present.sum() < 2:
        raise ValueError("the analytic head needs images of at least two classes")
    mean, scale = treatment_affine(stats)
    counts, sums = stats.counts[present], stats.sums[present]
    solver = _lda if head == "lda" else _ridge
    w_z, b_z, details = solver(counts, sums, stats.gram, mean, scale)
    # fold the affine treatment in: w.(h - m)/s + b = (w/s).h + (b - (w/s).m)
    weight = np.zeros((len(stats.classes), stats.dim))
    bias = np.full(len(stats.classes), -1e4)
    weight[present] = w_z / scale
    bias[present] = b_z - weight[present] @ mean
    return AnalyticHead(weight, bias, {"head": head, **details})


def _lda(counts, sums, gram, mean, scale):
    n, k, d = counts.sum(), len(counts), gram.shape[0]
    means_z = (sums / counts[:, None] - mean) / scale
    within = (gram - sums.T @ (sums / counts[:, None])) / np.outer(scale, scale)  # invariant to the shift
    cov = within / max(n - k, 1.0)
    cov = (cov + cov.T) / 2
    mu = np.trace(cov) / d
    alpha = float(np.mean(cov ** 2))
    den = (n + 1) * (alpha - mu ** 2 / d)
    shrinkage = 1.0 if den <= 0 else min((alpha + mu ** 2) / den, 1.0)
    shrunk = (1 - shrinkage) * cov + shrinkage * mu * np.eye(d)
    w = np.linalg.solve(shrunk, means_z.T).T
    b = -0.5 * np.sum(means_z * w, axis=1) + np.log(counts / n)
    return w, b, {"shrinkage": round(float(shrinkage), 6)}


def _ridge(counts, sums, gram, mean, scale):
    n, d = counts.sum(), gram.shape[0]
    data_mean = sums.sum(0) / n
    centred = (gram - n * np.outer(data_mean, data_mean)) / np.outer(scale, scale)
    cross = ((sums - counts[:, None] * data_mean) / scale).T  # (d, K): centred features x centred one-hot targets
    eig, vecs = np.linalg.eigh((centred + centred.T) / 2)
    eig = np.clip(eig, 0.0, None)
    rotated_sq = (vecs.T @ cross) ** 2
    target_ss = n - float((counts ** 2).sum()) / n
    unit = max(float(eig.mean()), 1e-300)
    best = None
    for rel in RIDGE_GRID:
        f = 1.0 / (eig + rel * unit)
        rss = target_ss - 2 * float(f @ rotated_sq.sum(1)) + float((eig * f * f) @ rotated_sq.sum(1))
        dof = float(eig @ f) + 1.0  # + the intercept
        gcv = rss / n / (1 - dof / n) ** 2 if dof < n else np.inf
        if best is None or gcv < best[0]:
            best = (gcv, rel)
    rel = best[1]
    w = (vecs @ ((1.0 / (eig + rel * unit))[:, None] * (vecs.T @ cross))).T  # (K, d)
    b = counts / n - w @ ((data_mean - mean) / scale)
    return w, b, {"lambda_relative": float(f"{rel:.4g}"), "gcv": float(best[0])}
