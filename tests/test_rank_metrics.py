"""Transferability metrics against values computed by hand or by a direct, independent implementation."""
from __future__ import annotations

import math

import numpy as np
import pytest

from tlearn.rank.metrics import hscore, leep, logme, nce


def _direct_log_evidence(f: np.ndarray, y: np.ndarray, log_alpha: float, log_beta: float) -> float:
    """log N(y; 0, I/beta + F F^T / alpha) / n: the evidence of Bayesian linear regression, no eigen tricks."""
    n = len(y)
    cov = np.eye(n) / math.exp(log_beta) + f @ f.T / math.exp(log_alpha)
    _, logdet = np.linalg.slogdet(cov)
    return float(-0.5 * (n * math.log(2 * math.pi) + logdet + y @ np.linalg.solve(cov, y))) / n


def _grid_max(f: np.ndarray, y: np.ndarray) -> float:
    """Maximum over a dense grid of (log alpha, log beta), refined twice around the best point."""
    centre, half = (0.0, 0.0), 12.0
    best = -np.inf
    for _ in range(3):
        grid_a = np.linspace(centre[0] - half, centre[0] + half, 61)
        grid_b = np.linspace(centre[1] - half, centre[1] + half, 61)
        values = np.array([[_direct_log_evidence(f, y, a, b) for b in grid_b] for a in grid_a])
        i, j = np.unravel_index(values.argmax(), values.shape)
        best, centre, half = values[i, j], (grid_a[i], grid_b[j]), half / 10
    return best


@pytest.mark.parametrize("n,d", [(40, 6), (9, 25)], ids=["samples>dim", "samples<dim"])
def test_logme_fixed_point_reaches_the_maximum_of_the_evidence(n, d):
    rng = np.random.default_rng(n)
    labels = np.array([3, 7, 11] * (n // 3) + [3] * (n % 3))  # not 0..C-1
    f = rng.normal(size=(n, d)) + np.eye(3)[np.searchsorted([3, 7, 11], labels)] @ rng.normal(size=(3, d))
    expected = np.mean([_grid_max(f, (labels == c).astype(float)) for c in (3, 7, 11)])
    assert logme(f, labels) == pytest.approx(expected, abs=2e-4)


def test_logme_does_not_depend_on_how_labels_are_named_or_on_feature_scale():
    rng = np.random.default_rng(0)
    f, labels = rng.normal(size=(30, 50)), rng.integers(0, 3, 30)
    names = np.array(["cat", "dog", "eel"])[labels]
    assert logme(f, names) == pytest.approx(logme(f, labels + 5), abs=1e-9)
    assert logme(100 * f, labels) == pytest.approx(logme(f, labels), abs=1e-6)


def test_logme_prefers_features_that_carry_the_labels():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 4, 60)
    informative = np.eye(4)[labels] @ rng.normal(size=(4, 100)) + 0.5 * rng.normal(size=(60, 100))
    noise = rng.normal(size=(60, 100))
    assert logme(informative, labels) > logme(noise, labels) + 0.1


THETA = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])  # 3 target images x 2 source classes
Y = np.array([5, 9, 5])


def test_leep_on_a_3x2_example_by_hand():
    # joint P(y, z): y=5: (0.9+0.6)/3, (0.1+0.4)/3; y=9: 0.2/3, 0.8/3 -> P(z) = 17/30, 13/30
    # P(5|z0) = 15/17, P(5|z1) = 5/13, P(9|z0) = 2/17, P(9|z1) = 8/13
    by_hand = np.mean(np.log([0.9 * 15 / 17 + 0.1 * 5 / 13, 0.2 * 2 / 17 + 0.8 * 8 / 13,
                              0.6 * 15 / 17 + 0.4 * 5 / 13]))
    assert leep(THETA, Y) == pytest.approx(by_hand, abs=1e-12)
    assert leep(THETA, np.array(["a", "b", "a"])) == pytest.approx(by_hand, abs=1e-12)


def test_nce_by_hand():
    # hard source labels z = 0, 0, 1, 1; target a, b, a, a: H(Y|Z) = 1/2 * log 2 (z=0 is a coin flip)
    theta = np.array([[0.7, 0.3], [0.6, 0.4], [0.1, 0.9], [0.2, 0.8]])
    assert nce(theta, np.array([2, 4, 2, 2])) == pytest.approx(-0.5 * math.log(2), abs=1e-12)
    assert nce(THETA, Y) == pytest.approx(0.0, abs=1e-12)  # z determines y


def test_hscore_by_hand_in_one_dimension():
    # var f = 1.25; class means 0.5 and 2.5 around 1.5 -> between-class variance 1; H = 1 / 1.25
    f = np.array([[0.0], [1.0], [2.0], [3.0]])
    assert hscore(f, np.array([1, 1, 8, 8]), shrinkage=False) == pytest.approx(0.8, abs=1e-12)


def test_hscore_matches_a_direct_implementation_and_shrinkage_fixes_samples_below_dimension():
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 3, 200)
    f = np.eye(3)[labels] @ rng.normal(size=(3, 5)) + rng.normal(size=(200, 5))
    cov_f = np.cov(f, rowvar=False, bias=True)
    g = np.stack([f[labels == labels[i]].mean(0) for i in range(len(f))])
    direct = np.trace(np.linalg.inv(cov_f) @ np.cov(g, rowvar=False, bias=True))
    assert hscore(f, labels, shrinkage=False) == pytest.approx(direct, rel=1e-9)
    assert hscore(f, labels) == pytest.approx(direct, rel=0.05)  # plenty of samples: little shrinkage
    # 30 samples in 100 dimensions: the plain H-score is C - 1 = 2 whatever the features; shrinkage tells apart
    small = rng.integers(0, 3, 30)
    informative = np.eye(3)[small] @ rng.normal(size=(3, 100)) + rng.normal(size=(30, 100))
    noise = rng.normal(size=(30, 100))
    assert hscore(noise, small, shrinkage=False) == pytest.approx(2.0, abs=1e-6)
    assert hscore(informative, small) > 2 * hscore(noise, small)


def test_logme_stays_finite_when_features_fit_the_labels_almost_exactly():
    # 24 images in 1280 dimensions with nearly noise-free class directions (what real features of tiny,
    # clean data sets look like): n - gamma cancels to zero if computed as a difference
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 24)
    f = np.eye(3)[labels] @ rng.normal(size=(3, 1280)) * 30 + rng.normal(size=(24, 1280)) * 0.01 + 5
    score = logme(f, labels)
    assert np.isfinite(score) and score > logme(rng.normal(size=(24, 1280)), labels) + 1
