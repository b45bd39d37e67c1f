"""The linear probes' cross-validated fit kept in the cache: a second fit on the same features and labels, with
the same grid, folds and seed, restores the chosen treatment, C, CV scores and the refitted weights instead of
running the cross-validation again (the bulk of a warm linear-probe run).

Keyed by the content of the features and labels (sha256 of their bytes) and by every setting that changes the
choice (grid, folds, tolerance, iterations, class weights, seed, treatment option, scikit-learn's version).
An entry is checked against the inputs before it is used; a bad one is logged and recomputed.
"""
from __future__ import annotations

import hashlib

import numpy as np
import sklearn
from sklearn.linear_model import LogisticRegression

from ..hashing import stable_hash
from ..result_cache import BadEntry, load_result, save_result
from .linear_probe import FEATURE_TREATMENTS, FIXED_C, FeatureTreatment, LinearProbe
from .multilabel_probe import MultiLabelProbe

PROBE_RESULT_VERSION = 4
KIND = "probe"


def _array_digest(a: np.ndarray) -> str:
    a = np.ascontiguousarray(a)
    return hashlib.sha256(f"{a.dtype.str}{a.shape}".encode() + a.tobytes()).hexdigest()


def probe_key(probe: LinearProbe | MultiLabelProbe, X: np.ndarray, y: np.ndarray, num_classes: int | None) -> str:
    """The cache key of fitting `probe` on (X, y): the data's content and the probe's settings."""
    return stable_hash({"version": PROBE_RESULT_VERSION, "probe": type(probe).__name__,
                        "Cs": [float(c) for c in probe.Cs], "folds": probe.folds, "max_iter": probe.max_iter,
                        "tol": probe.tol, "class_weight": probe.class_weight, "seed": probe.seed,
                        "features": probe.features, "cv_sample": getattr(probe, "cv_sample", None), "num_classes": num_classes, "sklearn": sklearn.__version__,
                        "X": _array_digest(np.asarray(X)), "y": _array_digest(np.asarray(y))}, length=32)


def _finite(name: str, a: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    if a.shape != shape or not np.issubdtype(a.dtype, np.floating) or not np.isfinite(a).all():
        raise BadEntry(f"{name} is not a finite float array of shape {shape}")
    return a


def _treatment(meta: dict, probe: LinearProbe | MultiLabelProbe, X: np.ndarray) -> tuple[FeatureTreatment, dict]:
    name, scores = meta["treatment"], meta["cv_scores"]
    allowed = FEATURE_TREATMENTS if probe.features == "auto" else (probe.features,)
    if name not in allowed:
        raise BadEntry(f"treatment {name!r} is not one of {allowed}")
    if meta.get("folds_used") == 0 and scores == {}:  # fixed settings: no cross-validation was possible
        return FeatureTreatment(name).fit(X), {}
    if (not isinstance(scores, dict) or set(scores) != set(allowed)
            or not all(isinstance(v, float) for v in scores.values())):
        raise BadEntry("CV scores do not cover the candidate treatments")
    return FeatureTreatment(name).fit(X), scores


def _restore_single(probe: LinearProbe, X: np.ndarray, y: np.ndarray, num_classes: int | None, meta: dict,
                    arrays: dict) -> LinearProbe:
    # the classes as LinearProbe.fit sets them: class indices 0..num_classes-1, or y's distinct values
    if num_classes is not None:
        classes, encoded = np.arange(int(num_classes)), y.astype(np.int64)
    else:
        classes, encoded = np.unique(y, return_inverse=True)
    present = np.unique(encoded)  # the regression's classes: indices into classes
    if not np.array_equal(arrays["classes"], present):
        raise BadEntry("classes differ from the labels'")
    rows = 1 if len(present) == 2 else len(present)
    coef = _finite("coef", arrays["coef"], (rows, X.shape[1]))
    intercept = _finite("intercept", arrays["intercept"], (rows,))
    C, folds, n_iter, cv_rows = meta["C"], meta["folds_used"], meta["n_iter"], meta["cv_rows"]
    fixed = folds == 0
    if not isinstance(C, float) or not any(np.isclose(C, c, rtol=1e-12) for c in ([FIXED_C] if fixed else probe.Cs)):
        raise BadEntry(f"C={C!r} is not in the grid")
    if type(folds) is not int or folds == 1 or folds < 0 or type(n_iter) is not int or n_iter < 0:
        raise BadEntry(f"folds_used={folds!r}, n_iter={n_iter!r}")
    if type(cv_rows) is not int or not (cv_rows == 0 if fixed else 2 <= cv_rows <= len(y)):
        raise BadEntry(f"cv_rows={cv_rows!r} for {len(y)} rows")
    probe.treatment_, probe.cv_scores_ = _treatment(meta, probe, X)
    model = LogisticRegression(C=C, max_iter=probe.max_iter, tol=probe.tol, class_weight=probe.class_weight)
    model.coef_, model.intercept_, model.classes_, model.n_features_in_ = coef, intercept, present, X.shape[1]
    probe.classes_, probe.num_classes_, probe.n_features_in_, probe.n_iter_ = classes, len(classes), X.shape[1], n_iter
    probe.folds_used_, probe.model_, probe.C_, probe.cv_rows_ = folds, model, C, cv_rows
    return probe


def _state_single(probe: LinearProbe) -> tuple[dict, dict]:
    return ({"treatment": probe.treatment, "C": probe.C_, "cv_scores": probe.cv_scores_,
             "folds_used": probe.folds_used_, "n_iter": probe.n_iter_, "cv_rows": probe.cv_rows_},
            {"coef": probe.model_.coef_, "intercept": probe.model_.intercept_, "classes": probe.model_.classes_})


def _restore_multi(probe: MultiLabelProbe, X: np.ndarray, Y: np.ndarray, meta: dict, arrays: dict) -> MultiLabelProbe:
    labels = Y.shape[1]
    coef = _finite("coef", arrays["coef"], (labels, X.shape[1]))
    intercept = _finite("intercept", arrays["intercept"], (labels,))
    Cs, folds, fallback = meta["C"], meta["folds_used"], meta["fallback"]
    if not isinstance(Cs, list) or len(Cs) != labels or not all(c is None or isinstance(c, float) for c in Cs):
        raise BadEntry("C is not one value (or null) per label")
    if type(folds) is not int or not isinstance(fallback, dict) or not all(
            isinstance(v, str) and k.isdigit() and int(k) < labels for k, v in fallback.items()):
        raise BadEntry("folds_used / fallback labels do not fit the labels")
    probe.treatment_, probe.cv_scores_ = _treatment(meta, probe, X)
    probe.num_labels_, probe.folds_used_ = labels, folds
    probe.fallback_ = {int(k): v for k, v in fallback.items()}
    probe.C_, probe.coef_, probe.intercept_ = Cs, coef, intercept
    return probe


def _state_multi(probe: MultiLabelProbe) -> tuple[dict, dict]:
    return ({"treatment": probe.treatment, "C": probe.C_, "cv_scores": probe.cv_scores_,
             "folds_used": probe.folds_used_, "fallback": {str(k): v for k, v in probe.fallback_.items()}},
            {"coef": probe.coef_, "intercept": probe.intercept_})


def fit_probe(probe: LinearProbe | MultiLabelProbe, X: np.ndarray, y: np.ndarray, cache_dir=None,
              num_classes: int | None = None) -> tuple[LinearProbe | MultiLabelProbe, bool]:
    """(probe fitted on (X, y), whether its fit came from the cache); y is the label matrix for a
    MultiLabelProbe. Without cache_dir, a plain fit."""
    multi = isinstance(probe, MultiLabelProbe)
    key = probe_key(probe, X, y, num_classes) if cache_dir is not None else ""
    if multi:
        restored = load_result(cache_dir, KIND, key, lambda meta, arrays: _restore_multi(probe, X, y, meta, arrays))
    else:
        restored = load_result(cache_dir, KIND, key,
                               lambda meta, arrays: _restore_single(probe, X, y, num_classes, meta, arrays))
    if restored is not None:
        return restored, True
    if multi:
        probe.fit(X, y)
    else:
        probe.fit(X, y, num_classes)
    if cache_dir is not None:
        save_result(cache_dir, KIND, key, *(_state_multi(probe) if multi else _state_single(probe)))
    return probe, False
