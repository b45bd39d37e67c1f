"""Transferability estimators: how well a source's features (or its classifier's outputs) suit a target task,
from one forward pass over the target's training images. Higher is better for every score here.

- LogME (You et al., ICML 2021): log marginal evidence of a Bayesian linear model on the features, per sample,
  averaged over one-vs-rest class targets; alpha/beta by the paper's fixed-point iteration.
- LEEP (Nguyen et al., ICML 2020): log expected empirical prediction from the source's class probabilities.
- NCE (Tran et al., ICCV 2019): negative conditional entropy H(Y|Z) of target labels given the source's
  hard labels.
- H-score (Bao et al., ICIP 2019): tr(cov(f)^-1 cov(E[f|y])); by default the shrinkage form of Ibrahim et al.
  ("Newer is not always better", 2022): Ledoit-Wolf cov(f), since the plain inverse is degenerate when
  samples < feature dimension (every source then scores about C - 1).

Labels may be any integers (or strings): they are mapped to 0..C-1 first.
"""
from __future__ import annotations

import numpy as np

LOGME_TOL = 1e-6  # relative change of alpha/beta at which the fixed point is taken as reached
LOGME_MAX_ITER = 100


def _dense_labels(labels) -> tuple[np.ndarray, int]:
    """Labels mapped to 0..C-1 (any integers or strings in, in sorted order)."""
    classes, y = np.unique(np.asarray(labels), return_inverse=True)
    return y.reshape(-1), len(classes)


def _check(features: np.ndarray, labels) -> None:
    if len(features) != len(labels):
        raise ValueError(f"{len(features)} feature rows but {len(labels)} labels")
    if len(features) < 2:
        raise ValueError("at least 2 samples are needed to score a source")


def _spectrum(f: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sigma = squared singular values > 0, u = left singular vectors) of f, cheaply for either shape.

    n > d: eigendecomposition of the d x d Gram matrix (the SVD of a tall matrix costs much more);
    n <= d: thin SVD of f, so only the n directions the data spans are kept (the stable form for n < d).
    """
    n, d = f.shape
    if n > d:
        sigma, v = np.linalg.eigh(f.T @ f)
        keep = sigma > sigma.max() * 1e-12
        sigma, v = sigma[keep], v[:, keep]
        u = (f @ v) / np.sqrt(sigma)
    else:
        u, s, _ = np.linalg.svd(f, full_matrices=False)
        sigma = s ** 2
        keep = sigma > sigma.max() * 1e-12
        sigma, u = sigma[keep], u[:, keep]
    return sigma, u


def logme_evidence(sigma: np.ndarray, x2: np.ndarray, rest: float, n: int, d: int,
                   alpha: float, beta: float) -> tuple[float, float, float]:
    """(log evidence / n, |m|^2, |f m - y|^2) at (alpha, beta), in the eigenbasis of f^T f.

    sigma: nonzero eigenvalues of f^T f; x2: squared projections of y on the matching left singular vectors;
    rest: |y|^2 minus their sum (the part of y outside f's column space). The d - k zero eigenvalues add
    log(alpha) each to log|alpha I + beta f^T f|.
    """
    t = alpha / beta
    m2 = float((sigma * x2 / (t + sigma) ** 2).sum())
    res2 = float((x2 * (t / (t + sigma)) ** 2).sum() + rest)
    logdet = float(np.log(alpha + beta * sigma).sum()) + (d - len(sigma)) * np.log(alpha)
    evidence = (d / 2 * np.log(alpha) + n / 2 * np.log(beta) - 0.5 * logdet - beta / 2 * res2 - alpha / 2 * m2
                - n / 2 * np.log(2 * np.pi))
    return evidence / n, m2, res2


def logme(features: np.ndarray, labels) -> float:
    """LogME: mean over classes of the maximised log evidence per sample of one-vs-rest linear regression."""
    _check(features, labels)
    f = np.asarray(features, dtype=np.float64)
    y, num_classes = _dense_labels(labels)
    n, d = f.shape
    sigma, u = _spectrum(f)
    scores = []
    for c in range(num_classes):
        target = (y == c).astype(np.float64)
        x2 = (u.T @ target) ** 2
        rest = max(float(target @ target - x2.sum()), 0.0)
        alpha, beta = 1.0, 1.0
        for _ in range(LOGME_MAX_ITER):
            t = alpha / beta
            gamma = float((sigma / (sigma + t)).sum())
            # n - gamma summed directly: when features fit the targets almost exactly, gamma is within rounding
            # of n and the difference would cancel to zero
            free = (n - len(sigma)) + float((t / (sigma + t)).sum())
            _, m2, res2 = logme_evidence(sigma, x2, rest, n, d, alpha, beta)
            if m2 <= 0 or res2 <= 0 or free <= 0:  # a perfect fit: the evidence is flat from here on
                break
            alpha, beta = gamma / m2, free / res2
            if abs(alpha / beta - t) <= LOGME_TOL * t:
                break
        scores.append(logme_evidence(sigma, x2, rest, n, d, alpha, beta)[0])
    return float(np.mean(scores))


def _joint(source_probs: np.ndarray, labels) -> tuple[np.ndarray, np.ndarray]:
    """(empirical joint P(y, z) of target label y and source class z, dense target labels)."""
    y, num_classes = _dense_labels(labels)
    onehot = np.eye(num_classes)[y]
    return onehot.T @ source_probs / len(y), y


def leep(source_probs: np.ndarray, labels) -> float:
    """LEEP: mean log of sum_z P(y_i | z) theta(x_i)_z, with P(y|z) from the empirical joint of soft outputs."""
    theta = np.asarray(source_probs, dtype=np.float64)
    _check(theta, labels)
    joint, y = _joint(theta, labels)
    conditional = joint / np.maximum(joint.sum(0, keepdims=True), 1e-300)  # P(y | z)
    eep = (theta @ conditional.T)[np.arange(len(y)), y]
    return float(np.log(np.maximum(eep, 1e-300)).mean())


def nce(source_probs: np.ndarray, labels) -> float:
    """NCE: -H(Y|Z) with Z the source's hard labels (argmax of its outputs)."""
    theta = np.asarray(source_probs)
    _check(theta, labels)
    z = theta.argmax(1)
    hard = np.zeros_like(theta, dtype=np.float64)
    hard[np.arange(len(z)), z] = 1.0
    joint, _ = _joint(hard, labels)
    pz = joint.sum(0, keepdims=True)
    nz = joint > 0
    return float((joint[nz] * np.log((joint / np.maximum(pz, 1e-300))[nz])).sum())


def hscore(features: np.ndarray, labels, shrinkage: bool = True) -> float:
    """H-score tr(cov(f)^-1 cov(E[f|y])); shrinkage: Ledoit-Wolf cov(f), else the pseudo-inverse of Bao et al."""
    _check(features, labels)
    f = np.asarray(features, dtype=np.float64)
    y, num_classes = _dense_labels(labels)
    f = f - f.mean(0)
    means = np.zeros((num_classes, f.shape[1]))
    np.add.at(means, y, f)
    means /= np.bincount(y, minlength=num_classes)[:, None]
    g = means[y]
    cov_g = g.T @ g / len(f)
    if shrinkage:
        from sklearn.covariance import ledoit_wolf

        cov_f, a = ledoit_wolf(f, assume_centered=True)
        # The between-class covariance shrinks with the same weight (Ibrahim et al.'s regularised H-score).
        return float(np.trace(np.linalg.solve(cov_f, (1 - a) * cov_g)))
    cov_f = f.T @ f / len(f)
    return float(np.trace(np.linalg.pinv(cov_f, rcond=1e-15) @ cov_g))


METRICS = {"logme": logme, "leep": leep, "nce": nce, "hscore": hscore}
NEEDS_SOURCE_OUTPUTS = ("leep", "nce")  # these read the source classifier's outputs, the others its features
