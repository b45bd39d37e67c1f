"""LinearProbe is a scikit-learn estimator: clone, get/set_params, score, Pipeline, GridSearchCV, any labels,
and scikit-learn's own estimator checks; with num_classes it keeps tlearn's class-index behaviour."""
from __future__ import annotations

import pickle

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import check_estimator

from tlearn.strategies.linear_probe import CV_SAMPLE, DEFAULT_CS, LinearProbe

# Checks that do not apply to LinearProbe, with the reason (none at present: every applicable check passes).
EXPECTED_FAILED_CHECKS: dict[str, str] = {}


def _blobs(n_per_class: int = 30, seed: int = 0, d: int = 6):
    """Three separable classes (the same centres for every seed; seed draws the points)."""
    centres = np.random.default_rng(0).normal(0, 3, (3, d))
    rng = np.random.default_rng(seed)
    X = np.concatenate([c + rng.normal(0, 1, (n_per_class, d)) for c in centres])
    y = np.repeat(np.arange(3), n_per_class)
    return X, y


def test_scikit_learn_s_estimator_checks_pass():
    results = check_estimator(LinearProbe(), expected_failed_checks=EXPECTED_FAILED_CHECKS, on_fail=None)
    bad = [(r["check_name"], repr(r["exception"])[:300]) for r in results
           if r["status"] == "failed" and r["check_name"] not in EXPECTED_FAILED_CHECKS]
    assert not bad, bad
    assert sum(r["status"] == "passed" for r in results) >= 50


def test_params_are_stored_unchanged_and_clone_keeps_them():
    probe = LinearProbe(Cs=(0.1, 1.0), folds=3, seed=4, features="l2", class_weight="balanced")
    assert probe.get_params() == {"Cs": (0.1, 1.0), "folds": 3, "max_iter": 500, "tol": 1e-3,
                                  "class_weight": "balanced", "seed": 4, "features": "l2", "cv_sample": CV_SAMPLE}
    copy = clone(probe.set_params(folds=4))
    assert copy is not probe and copy.get_params() == probe.get_params() and copy.folds == 4
    assert LinearProbe().Cs == DEFAULT_CS and LinearProbe(Cs=None).Cs is None
    X, y = _blobs()
    fitted = LinearProbe(features="standardized").fit(X, y)
    assert not hasattr(clone(fitted), "classes_")
    assert pickle.loads(pickle.dumps(fitted)).predict(X).tolist() == fitted.predict(X).tolist()


def test_pipeline_and_grid_search():
    X, y = _blobs()
    Xt, yt = _blobs(seed=1)
    pipe = make_pipeline(StandardScaler(), LinearProbe(features="raw")).fit(X, y)
    assert pipe.score(Xt, yt) > 0.9
    search = GridSearchCV(LinearProbe(), {"features": ["raw", "l2"], "Cs": [(0.01,), DEFAULT_CS]}, cv=3).fit(X, y)
    assert search.best_params_["features"] in ("raw", "l2") and search.best_score_ > 0.9
    assert search.best_estimator_.score(Xt, yt) == pytest.approx(search.score(Xt, yt))


def test_any_labels_and_predictions_among_them():
    X, y = _blobs()
    names = np.array(["cat", "dog", "eel"])[y]
    probe = LinearProbe(features="raw", class_weight={"cat": 2.0, "dog": 1.0, "eel": 1.0}).fit(X, names)
    assert probe.classes_.tolist() == ["cat", "dog", "eel"] and probe.predict_proba(X).shape == (90, 3)
    assert set(probe.predict(X)) <= {"cat", "dog", "eel"} and probe.score(X, names) > 0.9
    assert probe.n_features_in_ == 6 and probe.n_iter_ >= 1


def test_num_classes_keeps_class_indices_and_absent_classes():
    X, y = _blobs()
    y = np.where(y == 1, 3, y)  # classes 0, 2, 3 of 4: class 1 has no image
    probe = LinearProbe(features="raw").fit(X, y, 4)
    proba = probe.predict_proba(X)
    assert probe.classes_.tolist() == [0, 1, 2, 3] and proba.shape == (90, 4)
    assert proba[:, 1].max() < 1e-6 and set(probe.predict(X)) <= {0, 2, 3}
    with pytest.raises(ValueError, match="class indices 0..3"):
        LinearProbe().fit(X, y + 1, 4)
    one = LinearProbe().fit(X[:31], y[:31])  # one image of class 3: no cross-validation, the fixed settings
    assert one.folds_used_ == 0 and one.cv_scores_ == {} and "fixed defaults" in one.settings_source
    with pytest.raises(ValueError, match="at least 2 classes"):
        LinearProbe().fit(X[:30], np.zeros(30, dtype=int))
