"""Linear probe: multinomial logistic regression on frozen features, an estimator in scikit-learn's style."""
from __future__ import annotations

import numpy as np
import torch
from sklearn.linear_model import LogisticRegressionCV
from sklearn.model_selection import StratifiedKFold

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


class LinearProbe:
    """Feature treatment, then L2 logistic regression; the treatment and C are chosen by stratified CV on train.

    features: "auto" (choose among FEATURE_TREATMENTS by mean CV log-likelihood) or one treatment.
    After fit: treatment_ (chosen), C_ (chosen), cv_scores_ ({treatment: best mean CV log-likelihood}),
    classes_.
    """

    def __init__(self, Cs: tuple[float, ...] | None = None, folds: int = 5, max_iter: int = 500, tol: float = 1e-3,
                 class_weight: str | None = None, seed: int = 0, features: str = "auto"):
        # 7 values at tol 1e-3: the C of a finer grid in a quarter of the time (docs/results.md#linear-probe)
        self.Cs = Cs if Cs is not None else tuple(np.logspace(-4, 1, 7))
        self.tol = tol
        self.folds = folds
        self.max_iter = max_iter
        self.class_weight = class_weight
        self.seed = seed
        self.features = features

    def fit(self, X: np.ndarray, y: np.ndarray, num_classes: int | None = None) -> "LinearProbe":
        self.num_classes_ = int(num_classes or y.max() + 1)
        folds = min(self.folds, int(np.bincount(y).min()))
        if folds < 2:
            raise ValueError("every class needs at least 2 training images for the linear probe's cross-validation")
        self.folds_used_ = folds
        candidates = FEATURE_TREATMENTS if self.features == "auto" else (self.features,)
        self.cv_scores_: dict[str, float] = {}
        best = None
        for name in candidates:
            treatment = FeatureTreatment(name).fit(X)
            model = LogisticRegressionCV(
                Cs=list(self.Cs), cv=StratifiedKFold(folds, shuffle=True, random_state=self.seed),
                scoring="neg_log_loss", max_iter=self.max_iter, tol=self.tol, class_weight=self.class_weight,
                l1_ratios=(0.0,), use_legacy_attributes=False,
            ).fit(treatment.transform(X), y)
            score = float(model.scores_.reshape(-1, len(self.Cs)).mean(0).max())  # (folds, l1_ratios, Cs)
            self.cv_scores_[name] = score
            if best is None or score > best[0]:
                best = (score, treatment, model)
        _, self.treatment_, self.model_ = best
        self.classes_ = self.model_.classes_
        self.C_ = float(np.ravel(self.model_.C_)[0])
        return self

    @property
    def treatment(self) -> str:
        return self.treatment_.name

    def linear_weights(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(weight, bias) of one nn.Linear giving the same class probabilities: over raw features, or over
        l2_normalize(features) when the chosen treatment is l2."""
        coef, intercept = self.model_.coef_, self.model_.intercept_
        if coef.shape[0] == 1:  # binary: p(class 1) = sigmoid(z) = softmax([0, z])
            coef = np.vstack([np.zeros_like(coef), coef])
            intercept = np.concatenate([[0.0], intercept])
        full_w = np.zeros((self.num_classes_, coef.shape[1]))
        full_b = np.full(self.num_classes_, -1e4)  # classes absent from train are never predicted
        full_w[self.classes_] = coef
        full_b[self.classes_] = intercept
        return self.treatment_.fold(full_w, full_b)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        w, b = self.linear_weights()
        logits = self.treatment_.head_input(X) @ w.T + b
        return torch.softmax(logits.double(), dim=1).numpy()

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.predict_proba(X).argmax(1)
