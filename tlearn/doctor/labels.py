"""Label issues the confident-learning way (Northcutt et al. 2021), and images far from every class.

Out-of-sample class probabilities come from a cross-validated linear probe on the backbone's features: each
image is scored by a probe that never saw it. An image is a label issue when some other class is "confidently"
present, i.e. its probability reaches that class's threshold (the mean probability of the class over the images
labelled with it), or when the probe's best guess is another class. Issues are ranked by self-confidence (the
probability of the given label) or by the normalised margin (given label's probability minus the best other's).
"""
from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold

from ..constants import LABEL_RANKINGS as RANKINGS
from ..strategies.linear_probe import LinearProbe, l2_normalize

FOLDS = 5
OUTLIER_NEIGHBOURS = 10
OUTLIER_Z = 3.5  # robust z-score (1.4826 MAD) of the neighbour distance above which an image is an outlier


def out_of_sample_probabilities(features: np.ndarray, labels: np.ndarray, num_classes: int, seed: int = 0,
                                folds: int = FOLDS) -> tuple[np.ndarray, dict]:
    """(n, num_classes) probabilities, each row from a probe trained on the other folds (the linear probe's
    l2-normalised features and grid of C; the C whose out-of-fold log loss is lowest). Classes with fewer than 2
    images get no row (NaN)."""
    counts = np.bincount(labels, minlength=num_classes)
    usable = counts[labels] >= 2
    probs = np.full((len(labels), num_classes), np.nan)
    folds = int(min(folds, counts[counts >= 2].min())) if usable.any() else 0
    if folds < 2 or len(np.unique(labels[usable])) < 2:
        return probs, {"folds": 0, "C": None}
    X, y = l2_normalize(features[usable].astype(np.float64)), labels[usable]
    defaults = LinearProbe()
    splits = list(StratifiedKFold(folds, shuffle=True, random_state=seed).split(X, y))
    best = None
    for C in defaults.Cs:
        out = np.zeros((len(y), num_classes))
        for train, held in splits:
            model = LogisticRegression(C=C, max_iter=defaults.max_iter, tol=defaults.tol).fit(X[train], y[train])
            out[np.ix_(held, model.classes_)] = model.predict_proba(X[held])
        loss = -float(np.mean(np.log(np.clip(out[np.arange(len(y)), y], 1e-12, None))))
        if best is None or loss < best[0]:
            best = (loss, float(C), out)
    probs[usable] = best[2]
    return probs, {"folds": folds, "C": best[1], "log_loss": round(best[0], 4)}


def label_quality(probs: np.ndarray, labels: np.ndarray, ranking: str = "self_confidence") -> np.ndarray:
    """Per image, higher = the given label is more plausible: p(given), or p(given) - max p(other)."""
    if ranking not in RANKINGS:
        raise ValueError(f"--rank-by must be one of {', '.join(RANKINGS)}, not {ranking!r}")
    given = probs[np.arange(len(labels)), labels]
    if ranking == "self_confidence":
        return given
    others = probs.copy()
    others[np.arange(len(labels)), labels] = -np.inf
    return given - others.max(1)


def find_label_issues(probs: np.ndarray, labels: np.ndarray, ranking: str = "self_confidence"
                      ) -> list[tuple[int, int, float]]:
    """(row, suggested class, label quality) of the suspected label issues, most suspect first."""
    scored = ~np.isnan(probs).any(1)
    thresholds = np.array([probs[scored & (labels == k), k].mean() if (scored & (labels == k)).any() else np.inf
                           for k in range(probs.shape[1])])
    quality = label_quality(np.nan_to_num(probs), labels, ranking)
    issues = []
    for i in np.flatnonzero(scored):
        confident = np.flatnonzero(probs[i] >= thresholds)
        suggested = int(confident[probs[i, confident].argmax()]) if len(confident) else int(probs[i].argmax())
        if suggested != labels[i] or int(probs[i].argmax()) != labels[i]:
            guess = suggested if suggested != labels[i] else int(probs[i].argmax())
            issues.append((int(i), guess, float(quality[i])))
    issues.sort(key=lambda t: t[2])
    return issues


def outlier_scores(features: np.ndarray, k: int = OUTLIER_NEIGHBOURS, chunk: int = 512) -> np.ndarray:
    """Mean cosine distance to the k nearest other images (centred, unit-length features); high = far from all."""
    x = features.astype(np.float32) - features.mean(0, keepdims=True)
    x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    k = min(k, len(x) - 1)
    scores = np.zeros(len(x), dtype=np.float32)
    if k < 1:
        return scores
    for start in range(0, len(x), chunk):
        s = x[start:start + chunk] @ x.T
        s[np.arange(s.shape[0]), np.arange(s.shape[0]) + start] = -np.inf
        top = -np.partition(-s, k - 1, axis=1)[:, :k]
        scores[start:start + chunk] = 1.0 - top.mean(1)
    return scores


def outliers(scores: np.ndarray, z: float = OUTLIER_Z) -> list[int]:
    """Rows whose score is more than z robust standard deviations above the median, farthest first."""
    if len(scores) < 5:
        return []
    median = float(np.median(scores))
    spread = 1.4826 * float(np.median(np.abs(scores - median))) or 1e-12
    far = np.flatnonzero((scores - median) / spread > z)
    return sorted(far.tolist(), key=lambda i: -scores[i])
