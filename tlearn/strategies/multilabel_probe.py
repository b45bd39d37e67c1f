"""Multi-label linear probe: one-vs-rest L2 logistic regressions on frozen features, a sigmoid head.

The feature treatment is chosen as the single-label probe chooses it (mean CV log-likelihood, here averaged
over labels); each label gets its own C by stratified CV on train, because prevalences differ by orders of
magnitude. A label with fewer than 2 positives (or negatives) in train cannot be cross-validated: it takes the
median C of the others, and a label with no positives at all gets a constant, near-zero probability.
"""
from __future__ import annotations

import logging
import time

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
from sklearn.model_selection import StratifiedKFold, cross_val_predict

from .linear_probe import FEATURE_TREATMENTS, FeatureTreatment

log = logging.getLogger("tlearn")

PROGRESS_EVERY = 10  # labels between two progress lines of the per-label cross-validation
CONSTANT_LOGIT = 30.0  # a label never (or always) positive in train: probability about 1e-13 (or 1 - 1e-13)


class MultiLabelProbe:
    """Feature treatment, then one logistic regression per label. After fit: treatment_, C_ (per label, None
    for a constant label), cv_scores_ ({treatment: mean over labels of the best CV log-likelihood}), folds_used_,
    fallback_ (labels that could not be cross-validated: {index: why})."""

    def __init__(self, Cs: tuple[float, ...] | None = None, folds: int = 5, max_iter: int = 500, tol: float = 1e-3,
                 class_weight: str | None = None, seed: int = 0, features: str = "auto"):
        self.Cs = Cs if Cs is not None else tuple(np.logspace(-4, 1, 7))  # the single-label probe's grid
        self.folds, self.max_iter, self.tol = folds, max_iter, tol
        self.class_weight, self.seed, self.features = class_weight, seed, features

    def _folds(self, y: np.ndarray) -> int:
        return int(min(self.folds, y.sum(), len(y) - y.sum()))

    def _fit_treatment(self, Xt: np.ndarray, Y: np.ndarray, name: str = "") -> tuple[float, list, list]:
        """(mean best CV log-likelihood over the labels that allow CV, fitted models, chosen Cs)."""
        models, Cs, scores = [], [], []
        start, total = time.perf_counter(), Y.shape[1]
        for j in range(total):
            if j and j % PROGRESS_EVERY == 0:
                log.info("multi-label probe (%s features): %d of %d labels cross-validated in %.1fs", name, j, total,
                         time.perf_counter() - start)
            y = Y[:, j].astype(np.int64)
            folds = self._folds(y)
            if folds < 2:
                models.append(None)
                Cs.append(None)
                continue
            model = LogisticRegressionCV(
                Cs=list(self.Cs), cv=StratifiedKFold(folds, shuffle=True, random_state=self.seed),
                scoring="neg_log_loss", max_iter=self.max_iter, tol=self.tol, class_weight=self.class_weight,
                l1_ratios=(0.0,), use_legacy_attributes=False,
            ).fit(Xt, y)
            scores.append(float(model.scores_.reshape(-1, len(self.Cs)).mean(0).max()))
            models.append(model)
            Cs.append(float(np.ravel(model.C_)[0]))
        return (float(np.mean(scores)) if scores else 0.0), models, Cs

    def fit(self, X: np.ndarray, Y: np.ndarray) -> "MultiLabelProbe":
        Y = np.asarray(Y)
        self.num_labels_ = Y.shape[1]
        candidates = FEATURE_TREATMENTS if self.features == "auto" else (self.features,)
        self.cv_scores_: dict[str, float] = {}
        best = None
        for name in candidates:
            treatment = FeatureTreatment(name).fit(X)
            score, models, Cs = self._fit_treatment(treatment.transform(X), Y, name)
            self.cv_scores_[name] = score
            if best is None or score > best[0]:
                best = (score, treatment, models, Cs)
        _, self.treatment_, models, Cs = best
        self.folds_used_ = max([self._folds(Y[:, j]) for j in range(Y.shape[1])] + [0])
        cross_validated = [c for c in Cs if c is not None]
        median_C = float(np.median(cross_validated)) if cross_validated else 1.0
        Xt = self.treatment_.transform(X)
        self.fallback_: dict[int, str] = {}
        coef, intercept = np.zeros((Y.shape[1], X.shape[1])), np.zeros(Y.shape[1])
        for j, model in enumerate(models):
            y = Y[:, j].astype(np.int64)
            if model is None and 0 < y.sum() < len(y):
                Cs[j] = median_C
                model = LogisticRegression(C=median_C, max_iter=self.max_iter, tol=self.tol,
                                           class_weight=self.class_weight).fit(Xt, y)
                self.fallback_[j] = f"{int(y.sum())} positive(s) of {len(y)}: too few to cross-validate; C = median"
            if model is None:
                intercept[j] = CONSTANT_LOGIT if y.sum() else -CONSTANT_LOGIT
                self.fallback_[j] = f"{int(y.sum())} positive(s) of {len(y)}: constant probability"
                continue
            coef[j], intercept[j] = np.ravel(model.coef_), float(np.ravel(model.intercept_)[0])
        self.C_ = Cs
        self.coef_, self.intercept_ = coef, intercept
        return self

    @property
    def treatment(self) -> str:
        return self.treatment_.name

    def linear_weights(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(weight, bias) of one nn.Linear whose sigmoid gives the label probabilities: over raw features, or
        over l2_normalize(features) when the chosen treatment is l2."""
        return self.treatment_.fold(self.coef_, self.intercept_)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        w, b = self.linear_weights()
        return torch.sigmoid((self.treatment_.head_input(X) @ w.T + b).double()).numpy()

    def out_of_fold_proba(self, X: np.ndarray, Y: np.ndarray) -> np.ndarray:
        """Train probabilities each predicted by a model that did not see the image (per label, its chosen C):
        what thresholds are chosen on when there is no val split."""
        Xt = self.treatment_.transform(X)
        out = self.predict_proba(X)  # constant labels keep their constant
        for j, C in enumerate(self.C_):
            y = np.asarray(Y[:, j], dtype=np.int64)
            folds = self._folds(y)
            if C is None or folds < 2:
                continue
            out[:, j] = cross_val_predict(
                LogisticRegression(C=C, max_iter=self.max_iter, tol=self.tol, class_weight=self.class_weight), Xt,
                y, cv=StratifiedKFold(folds, shuffle=True, random_state=self.seed), method="predict_proba")[:, 1]
        return out
