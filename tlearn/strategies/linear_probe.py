"""Linear probe: multinomial logistic regression on frozen features, an estimator in scikit-learn's style."""
from __future__ import annotations

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
from sklearn.model_selection import StratifiedKFold
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from ..features.statistics import l2_normalize  # re-exported: doctor and tests import it from here

# How the probe may treat features before the logistic regression. Each is scaled so that one grid of C
# values fits all three (per-dimension RMS about 1); the choice is made by cross-validation on train.
FEATURE_TREATMENTS = ("raw", "standardized", "l2")


class FeatureTreatment:
    """raw (one global scale), standardized (per-dimension mean and scale) or l2 (unit length, times sqrt(d))."""

    def __init__(self, name: str):
        if name not in FEATURE_TREATMENTS:
            raise ValueError(f"feature treatment {name!r}: choose one of {', '.join(FEATURE_TREATMENTS)}")
        self.name = name

    def fit(self, X: np.ndarray) -> "FeatureTreatment":
        X = np.asarray(X, dtype=np.float64)
        self.mean_ = X.mean(0) if self.name == "standardized" else np.zeros(X.shape[1])
        if self.name == "standardized":
            scale = X.std(0)
            self.scale_ = np.where(scale > 0, scale, 1.0)
        elif self.name == "raw":
            self.scale_ = np.full(X.shape[1], max(float(np.sqrt((X ** 2).mean())), 1e-12))
        else:
            self.scale_ = np.ones(X.shape[1])
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        if self.name == "l2":
            return l2_normalize(X)
        return (X - self.mean_) / self.scale_

    def fold(self, weight: np.ndarray, bias: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """(weight, bias) over the treated features as the same map over head_input(features): the affine
        treatment folded in, w.(x - mu)/sigma + b = (w/sigma).x + (b - w.mu/sigma)."""
        w = weight / self.scale_
        b = bias - w @ self.mean_
        return torch.tensor(w, dtype=torch.float32), torch.tensor(b, dtype=torch.float32)

    def head_input(self, X: np.ndarray) -> torch.Tensor:
        """What a folded head takes: the raw features, or l2_normalize(features) for l2 (float32)."""
        X = np.asarray(X, dtype=np.float32)
        if self.name == "l2":
            X = l2_normalize(X).astype(np.float32)
        return torch.from_numpy(X)


# The grid of C values: 7 at tol 1e-3 give the C of a finer grid in a quarter of the time
# (docs/results.md#linear-probe).
DEFAULT_CS = tuple(float(c) for c in np.logspace(-4, 1, 7))
# Beyond this many training images the treatment and C are chosen by CV on a stratified sample of this size, and
# the chosen model is then fitted once on all images: the cross-validation (3 treatments x folds x the grid) stops
# growing with the data (docs/results.md#scale gives the accuracy this costs).
CV_SAMPLE = 2000


def stratified_sample(labels: np.ndarray, size: int, seed: int, at_least: int) -> np.ndarray | None:
    """Sorted row indices of a sample of about `size` rows with each class in its share of the labels (and at
    least `at_least` rows of each class, all of a smaller one); None when there are no more than `size` rows."""
    if len(labels) <= size:
        return None
    rng = np.random.default_rng(seed)
    rows = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        take = min(len(members), max(at_least, int(round(len(members) * size / len(labels)))))
        rows.append(rng.choice(members, take, replace=False))
    return np.sort(np.concatenate(rows))


# When a class has a single training image no cross-validation is possible: the probe then fits with these fixed
# settings (l2: the treatment that needs no statistics of the data; C: the grid value that did best on the val
# splits of flowers and chest X-ray at 1-10 labels per class, docs/design-notes.md#fixed-probe-settings).
FIXED_TREATMENT = "l2"
FIXED_C = DEFAULT_CS[5]


def settings_source(folds_used: int) -> str:
    """How a fitted probe's treatment and C were chosen, in words (recorded in the run and printed)."""
    if folds_used == 0:
        return "fixed defaults (a class has 1 training image: no cross-validation possible)"
    return f"{folds_used}-fold cross-validation on train" + (
        " (each fold leaves one image of the smallest classes out)" if folds_used <= 3 else "")


class LinearProbe(ClassifierMixin, BaseEstimator):
    """Feature treatment, then L2 logistic regression; the treatment and C are chosen by stratified CV on train.

    A scikit-learn estimator: hyper-parameters in the constructor (get_params / set_params / clone), fit /
    predict / predict_proba / score, so it fits in a Pipeline or GridSearchCV.
    features: "auto" (choose among FEATURE_TREATMENTS by mean CV log-likelihood) or one treatment. Cs: the
    grid of C (None: DEFAULT_CS). seed: the CV folds' shuffle (and the sample's). cv_sample: beyond this many
    rows the choice is made on a stratified sample of this size, then the chosen model is fitted on all rows
    (None: always on all rows).
    After fit: classes_, treatment_ (the chosen FeatureTreatment; `treatment` is its name), C_ (chosen),
    cv_scores_ ({treatment: best mean CV log-likelihood}), folds_used_, cv_rows_ (rows the choice was made on, 0
    with fixed settings),
    model_ (the LogisticRegressionCV, or the LogisticRegression fitted on all rows after a sampled choice),
    n_iter_, n_features_in_. fit(X, y, num_classes): y holds class indices 0..num_classes-1, classes_ is
    range(num_classes) and predict_proba has a column for each, also for classes absent from y (never
    predicted); without num_classes, classes_ are y's distinct values (any labels, e.g. strings).
    """

    def __init__(self, Cs: tuple[float, ...] | None = DEFAULT_CS, folds: int = 5, max_iter: int = 500,
                 tol: float = 1e-3, class_weight: str | dict | None = None, seed: int = 0, features: str = "auto",
                 cv_sample: int | None = CV_SAMPLE):
        self.cv_sample = cv_sample
        self.Cs = Cs
        self.folds = folds
        self.max_iter = max_iter
        self.tol = tol
        self.class_weight = class_weight
        self.seed = seed
        self.features = features

    def fit(self, X, y, num_classes: int | None = None) -> "LinearProbe":
        """Choose the treatment and C by CV on (X, y), then fit on all of it (fixed settings when a class has a
        single image: no CV possible)."""
        return self._fit(X, y, num_classes, fixed=False)

    def _fit(self, X, y, num_classes: int | None, fixed: bool, C: float | None = None) -> "LinearProbe":
        X, y = validate_data(self, X, y, dtype=[np.float64, np.float32])
        check_classification_targets(y)
        if num_classes is not None:
            if not np.all(np.equal(np.mod(y, 1), 0)) or y.min() < 0 or y.max() >= num_classes:
                raise ValueError(f"with num_classes={num_classes}, y must hold class indices 0..{num_classes - 1}")
            self.classes_, encoded = np.arange(int(num_classes)), y.astype(np.int64)
        else:
            self.classes_, encoded = np.unique(y, return_inverse=True)
        self.num_classes_ = len(self.classes_)
        counts = np.bincount(encoded, minlength=self.num_classes_)
        folds = min(self.folds, int(counts[counts > 0].min()))
        self.fixed_reason_ = "given settings, no cross-validation" if fixed else None
        if fixed or folds < 2 or len(np.flatnonzero(counts)) < 2:
            return self._fit_fixed(X, encoded, FIXED_C if C is None else C)
        self.folds_used_ = folds
        sample = None if self.cv_sample is None else stratified_sample(encoded, self.cv_sample, self.seed, folds)
        X_cv, y_cv = (X, encoded) if sample is None else (X[sample], encoded[sample])
        self.cv_rows_ = len(y_cv)
        Cs = list(DEFAULT_CS if self.Cs is None else self.Cs)
        candidates = FEATURE_TREATMENTS if self.features == "auto" else (self.features,)
        self.cv_scores_: dict[str, float] = {}
        best = None
        for name in candidates:
            treatment = FeatureTreatment(name).fit(X_cv)
            model = LogisticRegressionCV(
                Cs=Cs, cv=StratifiedKFold(folds, shuffle=True, random_state=self.seed),
                scoring="neg_log_loss", max_iter=self.max_iter, tol=self.tol,
                class_weight=self._class_weight(encoded), l1_ratios=(0.0,), use_legacy_attributes=False,
            ).fit(treatment.transform(X_cv), y_cv)
            score = float(model.scores_.reshape(-1, len(Cs)).mean(0).max())  # (folds, l1_ratios, Cs)
            self.cv_scores_[name] = score
            if best is None or score > best[0]:
                best = (score, treatment, model)
        _, self.treatment_, self.model_ = best
        self.C_ = float(np.ravel(self.model_.C_)[0])
        if sample is not None:  # the choice made on the sample; the model from all rows, starting from the sample's
            # (as LogisticRegressionCV's own refit starts from its folds': at tol 1e-3 lbfgs stops short of the
            # optimum, and a start from zero stops farther from it)
            start = self.model_
            self.treatment_ = FeatureTreatment(self.treatment_.name).fit(X)
            model = LogisticRegression(C=self.C_, max_iter=self.max_iter, tol=self.tol, warm_start=True,
                                       class_weight=self._class_weight(encoded))
            model.coef_, model.intercept_ = start.coef_.copy(), start.intercept_.copy()
            self.model_ = model.fit(self.treatment_.transform(X), encoded)
        self.n_iter_ = int(np.max(self.model_.n_iter_))  # the most solver iterations of any CV or final fit
        return self

    def fit_fixed(self, X, y, num_classes: int | None = None, C: float | None = None) -> "LinearProbe":
        """Fit without cross-validation: FIXED_TREATMENT (or the one asked for) and C (default FIXED_C), as fit()
        does when a class has a single image."""
        return self._fit(X, y, num_classes, fixed=True, C=C)

    def _fit_fixed(self, X: np.ndarray, encoded: np.ndarray, C: float) -> "LinearProbe":
        """No cross-validation (none possible, or the settings are given): FIXED_TREATMENT (or the one asked
        for) and C; folds_used_ 0 and no CV scores say so."""
        self.folds_used_, self.cv_scores_, self.cv_rows_ = 0, {}, 0
        self.treatment_ = FeatureTreatment(FIXED_TREATMENT if self.features == "auto" else self.features).fit(X)
        self.C_ = float(C)
        if len(np.unique(encoded)) < 2:
            raise ValueError("only one class in the training images: the linear probe needs at least 2 classes")
        self.model_ = LogisticRegression(C=self.C_, max_iter=self.max_iter, tol=self.tol,
                                         class_weight=self._class_weight(encoded)).fit(
            self.treatment_.transform(X), encoded)
        self.n_iter_ = int(np.max(self.model_.n_iter_))
        return self

    @property
    def settings_source(self) -> str:
        """How treatment and C were chosen: cross-validation (how many folds) or fixed defaults."""
        check_is_fitted(self)
        given = getattr(self, "fixed_reason_", None)
        return f"{given} ({self.treatment}, C={self.C_:.3g})" if given else settings_source(self.folds_used_)

    def _class_weight(self, encoded: np.ndarray):
        """class_weight for the regression on class indices: a dict keyed by label is re-keyed by index."""
        if not isinstance(self.class_weight, dict):
            return self.class_weight
        index = {label: i for i, label in enumerate(self.classes_.tolist())}
        return {index[k]: v for k, v in self.class_weight.items() if k in index}

    @property
    def treatment(self) -> str:
        """The chosen feature treatment's name."""
        return self.treatment_.name

    def linear_weights(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(weight, bias) of one nn.Linear giving the same class probabilities: over raw features, or over
        l2_normalize(features) when the chosen treatment is l2."""
        check_is_fitted(self)
        coef, intercept = self.model_.coef_, self.model_.intercept_
        if coef.shape[0] == 1:  # binary: p(class 1) = sigmoid(z) = softmax([0, z])
            coef = np.vstack([np.zeros_like(coef), coef])
            intercept = np.concatenate([[0.0], intercept])
        full_w = np.zeros((self.num_classes_, coef.shape[1]))
        full_b = np.full(self.num_classes_, -1e4)  # classes absent from train are never predicted
        present = self.model_.classes_  # indices into classes_
        full_w[present] = coef
        full_b[present] = intercept
        return self.treatment_.fold(full_w, full_b)

    def predict_proba(self, X) -> np.ndarray:
        """(n, len(classes_)) class probabilities, in float64."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=[np.float64, np.float32], reset=False)
        w, b = self.linear_weights()
        logits = self.treatment_.head_input(X).double() @ w.double().T + b.double()
        return torch.softmax(logits, dim=1).numpy()

    def predict(self, X) -> np.ndarray:
        """The most probable class of each row (an element of classes_)."""
        proba = self.predict_proba(X)
        return self.classes_[proba.argmax(1)]
