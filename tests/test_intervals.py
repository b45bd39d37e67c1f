"""Bootstrap 95% intervals: over images, or over whole groups (patients) when groups are known."""
from __future__ import annotations


import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from tlearn.constants import BOOTSTRAP_RESAMPLES
from tlearn.evaluate.intervals import add_intervals, bootstrap_intervals, weighted_auroc
from tlearn.evaluate.metrics import classification_metrics


def _binary(n: int, seed: int = 0, skill: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    score = 1 / (1 + np.exp(-(skill * (2 * y - 1) + rng.normal(0, 1, n))))
    return y, np.stack([1 - score, score], 1)


def _width(ci: dict, key: str) -> float:
    return ci["ci95"][key][1] - ci["ci95"][key][0]


def test_weighted_auroc_is_sklearns_auroc_with_ties_and_weights():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 500)
    s = np.round(rng.random(500) * 0.5 + 0.3 * y, 1)  # coarse scores: many ties
    w = rng.integers(0, 4, 500).astype(float)
    assert weighted_auroc(y, s) == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert weighted_auroc(y, s, w) == pytest.approx(roc_auc_score(y, s, sample_weight=w), abs=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_interval_contains_the_point_estimate(seed):
    y, probs = _binary(400, seed)
    m = add_intervals(classification_metrics(y, probs), y, probs)
    assert m["ci_unit"] == "image" and m["ci_resamples"] == BOOTSTRAP_RESAMPLES
    for key in ("accuracy", "balanced_accuracy", "auroc"):
        lo, hi = m["ci95"][key]
        assert lo < m[key] < hi, key


def test_interval_narrows_with_more_images():
    small, large = (bootstrap_intervals(*_binary(n, 3)) for n in (100, 2500))
    for key in ("accuracy", "balanced_accuracy", "auroc"):
        # the width of a mean's interval falls as 1/sqrt(n): 5x here
        assert _width(large, key) < 0.35 * _width(small, key), key


def test_cluster_bootstrap_is_wider_when_a_patients_images_agree():
    rng = np.random.default_rng(4)
    patients, per = 60, 8
    y = np.repeat(rng.integers(0, 2, patients), per)
    hard = np.repeat(rng.random(patients) < 0.3, per)  # a patient's images are all right or all wrong
    p_true = np.where(hard, 0.3, 0.8) + rng.normal(0, 0.02, len(y))
    probs = np.zeros((len(y), 2))
    probs[np.arange(len(y)), y] = p_true
    probs[np.arange(len(y)), 1 - y] = 1 - p_true
    groups = [f"p{i // per}" for i in range(len(y))]
    by_image = bootstrap_intervals(y, probs)
    by_patient = bootstrap_intervals(y, probs, groups)
    assert by_patient["ci_unit"] == "group" and by_patient["ci_units"] == patients
    for key in ("accuracy", "balanced_accuracy", "auroc"):
        assert _width(by_patient, key) > 1.8 * _width(by_image, key), key  # ~sqrt(8) in theory
    # images without a group are their own unit: all None is the image bootstrap
    assert bootstrap_intervals(y, probs, [None] * len(y))["ci_unit"] == "image"


def test_same_seed_same_interval_other_seed_other_interval():
    y, probs = _binary(300, 5)
    assert bootstrap_intervals(y, probs) == bootstrap_intervals(y, probs)
    assert bootstrap_intervals(y, probs, seed=1)["ci95"] != bootstrap_intervals(y, probs, seed=2)["ci95"]


def test_multiclass_gets_macro_one_vs_rest_auroc_and_a_missing_class_no_auroc_interval():
    rng = np.random.default_rng(6)
    y = rng.integers(0, 4, 600)
    probs = rng.dirichlet(np.ones(4), 600)
    probs[np.arange(600), y] += 0.4
    probs /= probs.sum(1, keepdims=True)
    m = add_intervals(classification_metrics(y, probs), y, probs)
    assert m["auroc_macro"] == pytest.approx(roc_auc_score(y, probs, multi_class="ovr"), abs=1e-12)
    assert "auroc" not in m and m["ci95"]["auroc_macro"][0] < m["auroc_macro"] < m["ci95"]["auroc_macro"][1]
    one_class = bootstrap_intervals(np.zeros(50, int), np.tile([0.8, 0.2], (50, 1)))
    assert set(one_class["ci95"]) == {"accuracy", "balanced_accuracy"}


def test_multilabel_intervals_per_label_and_macro():
    from tlearn.evaluate.intervals import add_multilabel_intervals
    from tlearn.evaluate.multilabel import multilabel_metrics

    rng = np.random.default_rng(0)
    n = 400
    y = np.stack([rng.random(n) < 0.3, rng.random(n) < 0.5, np.zeros(n, bool)], axis=1).astype(int)
    p = np.clip(y * 0.3 + rng.random((n, 3)) * 0.7, 0, 1)  # labels 0 and 1 informative; label 2 has no positive
    m = add_multilabel_intervals(multilabel_metrics(y, p, ["a", "b", "c"]), y, p)
    for row in m["per_label"][:2]:
        lo, hi = row["auroc_ci95"]
        assert lo < row["auroc"] < hi and hi - lo < 0.2
    assert m["per_label"][2]["auroc_ci95"] is None  # undefined without a positive
    lo, hi = m["ci95"]["macro_auroc"]
    assert lo < m["macro_auroc"] < hi and m["ci_unit"] == "image"
    grouped = add_multilabel_intervals(multilabel_metrics(y, p, ["a", "b", "c"]), y, p, [str(i // 4) for i in range(n)])
    assert grouped["ci_unit"] == "group" and grouped["ci_units"] == n // 4
