"""Linear probe: multinomial logistic regression on frozen features, an estimator in scikit-learn's style."""
from __future__ import annotations

import numpy as np
import torch
from sklearn.linear_model import LogisticRegressionCV
from sklearn.model_selection import StratifiedKFold
from sklearn.preprocessing import StandardScaler


class LinearProbe:
    """Standardise features, then L2 logistic regression with C chosen by stratified CV on train only.

    After fit: C_ (chosen), cv_scores_ (mean CV log-likelihood per C), classes_.
    """

    def __init__(self, Cs: tuple[float, ...] | None = None, folds: int = 5, max_iter: int = 500, tol: float = 1e-3,
                 class_weight: str | None = None, seed: int = 0):
        # 7 values at tol 1e-3: the C of a finer grid in a quarter of the time (docs/results.md#linear-probe)
        self.Cs = Cs if Cs is not None else tuple(np.logspace(-4, 1, 7))
        self.tol = tol
        self.folds = folds
        self.max_iter = max_iter
        self.class_weight = class_weight
        self.seed = seed

    def fit(self, X: np.ndarray, y: np.ndarray, num_classes: int | None = None) -> "LinearProbe":
        self.num_classes_ = int(num_classes or y.max() + 1)
        self.scaler_ = StandardScaler().fit(X)
        folds = min(self.folds, int(np.bincount(y).min()))
        if folds < 2:
            raise ValueError("every class needs at least 2 training images for the linear probe's cross-validation")
        self.model_ = LogisticRegressionCV(
            Cs=list(self.Cs), cv=StratifiedKFold(folds, shuffle=True, random_state=self.seed),
            scoring="neg_log_loss", max_iter=self.max_iter, tol=self.tol, class_weight=self.class_weight,
            l1_ratios=(0.0,), use_legacy_attributes=False,
        ).fit(self.scaler_.transform(X), y)
        self.classes_ = self.model_.classes_
        self.C_ = float(np.ravel(self.model_.C_)[0])
        return self

    def linear_weights(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(weight, bias) of one nn.Linear over raw features giving the same class probabilities."""
        coef, intercept = self.model_.coef_, self.model_.intercept_
        if coef.shape[0] == 1:  # binary: p(class 1) = sigmoid(z) = softmax([0, z])
            coef = np.vstack([np.zeros_like(coef), coef])
            intercept = np.concatenate([[0.0], intercept])
        full_w = np.zeros((self.num_classes_, coef.shape[1]))
        full_b = np.full(self.num_classes_, -1e4)  # classes absent from train are never predicted
        full_w[self.classes_] = coef
        full_b[self.classes_] = intercept
        # Fold the standardisation in: w.(x - mu)/sigma + b = (w/sigma).x + (b - w.mu/sigma)
        w = full_w / self.scaler_.scale_
        b = full_b - w @ self.scaler_.mean_
        return torch.tensor(w, dtype=torch.float32), torch.tensor(b, dtype=torch.float32)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        w, b = self.linear_weights()
        logits = torch.from_numpy(np.asarray(X, dtype=np.float32)) @ w.T + b
        return torch.softmax(logits.double(), dim=1).numpy()

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.predict_proba(X).argmax(1)
