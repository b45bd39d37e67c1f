"""The linear probe with unlabeled images (`fit --unlabeled`): self-training or label spreading on cached features,
kept only when it pays.

Each candidate gives some unlabeled images a pseudo-label, then the probe is refitted on the labelled and
pseudo-labelled features with the treatment and C already chosen:
- self-training: the probe's own predictions of probability >= CONFIDENCE;
- label spreading (Zhou et al. 2004, scikit-learn's LabelSpreading): labels spread over a k-nearest-neighbour
  graph of labelled and unlabeled features; the spread labels of probability >= CONFIDENCE.
Which one (or none) is judged on val accuracy, or without val by k-fold cross-validation on train (each fold's
held-out labels are hidden from the pseudo-labelling too); a candidate is kept only when it beats the plain probe.
"""
from __future__ import annotations

import numpy as np
from sklearn.model_selection import StratifiedKFold
from sklearn.semi_supervised import LabelSpreading

from .linear_probe import LinearProbe

SEMI_METHODS = ("self-training", "label-spreading")
CONFIDENCE = 0.9  # a pseudo-label is kept at this probability or more
SPREAD_NEIGHBOURS = 10
# label spreading: the weight of the neighbours' labels against an image's own at each step (Zhou et al.'s 0.99;
# scikit-learn's default 0.2 damps a label within a few hops)
SPREAD_ALPHA = 0.99
JUDGE_FOLDS = 5


def _refit(probe: LinearProbe, X: np.ndarray, y: np.ndarray, num_classes: int) -> LinearProbe:
    """A probe with `probe`'s chosen treatment and C fitted on (X, y), without cross-validation."""
    return LinearProbe(seed=probe.seed, features=probe.treatment, class_weight=probe.class_weight,
                       max_iter=probe.max_iter, tol=probe.tol).fit_fixed(X, y, num_classes, C=probe.C_)


def pseudo_labels(method: str, probe: LinearProbe, X: np.ndarray, y: np.ndarray, X_u: np.ndarray,
                  num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """(rows of X_u given a pseudo-label, their labels) by `method`, from the probe fitted on (X, y)."""
    if method == "self-training":
        p = probe.predict_proba(X_u)
    elif method == "label-spreading":
        Z = probe.treatment_.transform(np.concatenate([X, X_u]))  # the space the probe sees
        spread = LabelSpreading(kernel="knn", n_neighbors=min(SPREAD_NEIGHBOURS, len(Z) - 1), alpha=SPREAD_ALPHA,
                                max_iter=1000).fit(Z, np.concatenate([y, np.full(len(X_u), -1)]))
        p = np.zeros((len(X_u), num_classes))
        p[:, spread.classes_] = np.nan_to_num(spread.label_distributions_[len(X):])  # unreached: no label
    else:
        raise ValueError(f"unknown semi-supervised method {method!r}: choose one of {', '.join(SEMI_METHODS)}")
    keep = np.flatnonzero(p.max(1) >= CONFIDENCE)
    return keep, p[keep].argmax(1)


def with_pseudo_labels(method: str, probe: LinearProbe, X: np.ndarray, y: np.ndarray, X_u: np.ndarray,
                       num_classes: int) -> tuple[LinearProbe, int]:
    """(the probe refitted on (X, y) and the pseudo-labelled part of X_u, how many were pseudo-labelled)."""
    keep, labels = pseudo_labels(method, probe, X, y, X_u, num_classes)
    if not len(keep):
        return probe, 0
    return _refit(probe, np.concatenate([X, X_u[keep]]), np.concatenate([y, labels]), num_classes), len(keep)


def _accuracy(probe: LinearProbe, X: np.ndarray, y: np.ndarray) -> float:
    return float((probe.predict(X) == y).mean())


def choose_semi_supervised(probe: LinearProbe, X: np.ndarray, y: np.ndarray, X_u: np.ndarray, num_classes: int,
                           X_val: np.ndarray | None = None, y_val: np.ndarray | None = None
                           ) -> tuple[LinearProbe, dict]:
    """(the probe to keep, the record of the choice): the plain probe or the best candidate that beats it, judged
    on (X_val, y_val) when given, else by cross-validation on (X, y)."""
    candidates = ("none", *SEMI_METHODS)
    scores: dict[str, float] = {}
    if X_val is not None and len(X_val):
        judged_on = f"val accuracy ({len(X_val)} images)"
        for m in candidates:
            fitted = probe if m == "none" else with_pseudo_labels(m, probe, X, y, X_u, num_classes)[0]
            scores[m] = _accuracy(fitted, X_val, y_val)
    else:
        counts = np.bincount(y)
        folds = min(JUDGE_FOLDS, int(counts[counts > 0].min()))
        if folds < 2:
            return probe, {"chosen": "none", "judged_on": None, "scores": {}, "pseudo_labelled": 0,
                           "unlabeled_images": int(len(X_u)),
                           "why": "no val and a class with 1 image: nothing to judge the unlabeled images' use on, "
                                  "so they are not used"}
        judged_on = f"{folds}-fold cross-validation on train"
        per_fold = {m: [] for m in candidates}
        for train, test in StratifiedKFold(folds, shuffle=True, random_state=probe.seed).split(X, y):
            base = _refit(probe, X[train], y[train], num_classes)
            for m in candidates:
                fitted = base if m == "none" else with_pseudo_labels(m, base, X[train], y[train], X_u, num_classes)[0]
                per_fold[m].append(_accuracy(fitted, X[test], y[test]))
        scores = {m: float(np.mean(v)) for m, v in per_fold.items()}
    best = max(SEMI_METHODS, key=lambda m: scores[m])
    record = {"judged_on": judged_on, "scores": {k: round(v, 4) for k, v in scores.items()},
              "unlabeled_images": int(len(X_u)), "confidence": CONFIDENCE}
    if scores[best] <= scores["none"]:
        return probe, record | {"chosen": "none", "pseudo_labelled": 0,
                                "why": f"neither beats the probe on labels alone ({judged_on})"}
    kept, n = with_pseudo_labels(best, probe, X, y, X_u, num_classes)
    return kept, record | {"chosen": best, "pseudo_labelled": n,
                           "why": f"{best} beats the probe on labels alone ({judged_on})"}
