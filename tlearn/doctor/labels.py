"""Label issues the confident-learning way (Northcutt et al. 2021), and images far from every class.

Out-of-sample class probabilities come from a cross-validated linear probe on the backbone's features: each
image is scored by a probe that never saw it. An image is a label issue when some other class is "confidently"
present, i.e. its probability reaches that class's threshold (the mean probability of the class over the images
labelled with it), or when the probe's best guess is another class. Issues are ranked by self-confidence (the
probability of the given label) or by the normalised margin ((given label's probability - the best other's + 1) / 2).

A probe trained on the classes must put every image in one of them, so an image of none (a picture of the words
"image not found" among ants) can look confidently labelled. Such images are found apart, by their local outlier
factor among all images' features, and join the label issues with their score shrunk by how far out they are.
"""
from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold

from ..constants import LABEL_RANKINGS as RANKINGS
from ..data.neighbours import EXACT_UP_TO, nearest
from ..strategies.linear_probe import CV_SAMPLE, LinearProbe, l2_normalize, stratified_sample

FOLDS = 5
# Outliers: local outlier factor over OUTLIER_NEIGHBOURS neighbours (unit-length features); an image is an outlier
# when its factor's robust z-score (median, 1.4826 MAD) exceeds OUTLIER_Z, and its label score is then multiplied
# by exp(OUTLIER_Z - z). Raw features and 20 neighbours separate hymenoptera's "image not found" picture (z 7.1,
# the farthest of 398) and flowers' cathedral ceiling better than centred features or 5-10 neighbours.
OUTLIER_NEIGHBOURS = 20
OUTLIER_Z = 3.0


def out_of_sample_probabilities(features: np.ndarray, labels: np.ndarray, num_classes: int, seed: int = 0,
                                folds: int = FOLDS, cv_sample: int | None = CV_SAMPLE) -> tuple[np.ndarray, dict]:
    """(n, num_classes) probabilities, each row from a probe trained on the other folds (the linear probe's
    l2-normalised features and grid of C; the C whose out-of-fold log loss is lowest). Classes with fewer than 2
    images get no row (NaN). Beyond cv_sample images the C is chosen on a stratified sample of that size, as the
    linear probe chooses it, and the folds of all images are then fitted at that C alone."""
    counts = np.bincount(labels, minlength=num_classes)
    usable = counts[labels] >= 2
    probs = np.full((len(labels), num_classes), np.nan)
    folds = int(min(folds, counts[counts >= 2].min())) if usable.any() else 0
    if folds < 2 or len(np.unique(labels[usable])) < 2:
        return probs, {"folds": 0, "C": None}
    X, y = l2_normalize(features[usable].astype(np.float64)), labels[usable]
    defaults = LinearProbe()
    sample = None if cv_sample is None else stratified_sample(y, cv_sample, seed, folds)
    if sample is None:
        loss, C, out = _sweep(X, y, num_classes, folds, seed, sorted(defaults.Cs), defaults)
    else:
        loss, C, _ = _sweep(X[sample], y[sample], num_classes, folds, seed, sorted(defaults.Cs), defaults)
        loss, C, out = _sweep(X, y, num_classes, folds, seed, [C], defaults)
    probs[usable] = out
    return probs, {"folds": folds, "C": C, "log_loss": round(loss, 4),
                   "C_chosen_on": len(y) if sample is None else len(sample)}


def _sweep(X: np.ndarray, y: np.ndarray, num_classes: int, folds: int, seed: int, Cs: list[float],
           defaults: LinearProbe) -> tuple[float, float, np.ndarray]:
    """(out-of-fold log loss, C, out-of-fold probabilities) of the best C of Cs, tried small to large."""
    splits = list(StratifiedKFold(folds, shuffle=True, random_state=seed).split(X, y))
    models = [LogisticRegression(max_iter=defaults.max_iter, tol=defaults.tol, warm_start=True) for _ in splits]
    best, worse = None, 0
    for C in Cs:  # small to large C, each fit starting from the last: a fraction of the time
        out = np.zeros((len(y), num_classes))
        for model, (train, held) in zip(models, splits):
            model.set_params(C=C).fit(X[train], y[train])
            out[np.ix_(held, model.classes_)] = model.predict_proba(X[held])
        loss = -float(np.mean(np.log(np.clip(out[np.arange(len(y)), y], 1e-12, None))))
        if best is None or loss < best[0]:
            best, worse = (loss, float(C), out), 0
        else:
            worse += 1
            if worse == 2:  # the out-of-fold loss has turned up: larger C only overfits more
                break
    return best


def label_quality(probs: np.ndarray, labels: np.ndarray, ranking: str = "self_confidence") -> np.ndarray:
    """Per image in [0, 1], higher = the given label is more plausible: p(given), or (p(given) - max p(other) + 1) / 2."""
    if ranking not in RANKINGS:
        raise ValueError(f"--rank-by must be one of {', '.join(RANKINGS)}, not {ranking!r}")
    given = probs[np.arange(len(labels)), labels]
    if ranking == "self_confidence":
        return given
    others = probs.copy()
    others[np.arange(len(labels)), labels] = -np.inf
    return (given - others.max(1) + 1.0) / 2.0


def find_label_issues(probs: np.ndarray, labels: np.ndarray, ranking: str = "self_confidence",
                      outlier_z: np.ndarray | None = None) -> list[tuple[int, int | None, float, str]]:
    """(row, suggested class or None, score, kind) of the suspected label issues, most suspect first. kind "class":
    another class fits better (confident learning); "outlier": no class fits (outlier_z beyond OUTLIER_Z)."""
    scored = ~np.isnan(probs).any(1)
    thresholds = np.array([probs[scored & (labels == k), k].mean() if (scored & (labels == k)).any() else np.inf
                           for k in range(probs.shape[1])])
    quality = label_quality(np.nan_to_num(probs), labels, ranking)
    z = np.zeros(len(labels)) if outlier_z is None else outlier_z
    shrink = np.exp(np.minimum(0.0, OUTLIER_Z - z))
    issues = []
    for i in np.flatnonzero(scored):
        confident = np.flatnonzero(probs[i] >= thresholds)
        best = int(probs[i].argmax())
        suggested = int(confident[probs[i, confident].argmax()]) if len(confident) else best
        if suggested != labels[i] or best != labels[i]:
            guess = suggested if suggested != labels[i] else best
            issues.append((int(i), guess, float(quality[i] * shrink[i]), "class"))
        elif z[i] > OUTLIER_Z:
            issues.append((int(i), None, float(quality[i] * shrink[i]), "outlier"))
    issues.sort(key=lambda t: t[2])
    return issues


def outlier_scores(features: np.ndarray, labels: np.ndarray, k: int = OUTLIER_NEIGHBOURS) -> np.ndarray:
    """Robust z-score of each image's local outlier factor (unit-length features): how much sparser its
    neighbourhood is than its neighbours' own, against the rest of the set; high = far from every class."""
    from sklearn.neighbors import LocalOutlierFactor

    if len(features) < 5:
        return np.zeros(len(features))
    counts = np.bincount(labels)
    k = min(k, int(counts[counts > 0].min()) // 2)  # neighbourhoods within one class, or a small class is "far"
    if k < 2:
        return np.zeros(len(features))
    x = features.astype(np.float32)
    x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    k = min(k, len(x) - 1)
    if len(x) <= EXACT_UP_TO:
        factor = -LocalOutlierFactor(n_neighbors=k).fit(x).negative_outlier_factor_
    else:  # every pair would cost n^2: the k nearest from tlearn.data.neighbours, as a precomputed graph
        factor = -LocalOutlierFactor(n_neighbors=k, metric="precomputed").fit(
            neighbour_graph(x, k)).negative_outlier_factor_
    median = float(np.median(factor))
    spread = 1.4826 * float(np.median(np.abs(factor - median))) or 1e-12
    return (factor - median) / spread


def neighbour_graph(x: np.ndarray, k: int):
    """Sparse (n, n) matrix of each unit row's Euclidean distance to itself (0, stored) and its k nearest other
    rows, as LocalOutlierFactor(metric="precomputed") reads it (it drops each row's own entry)."""
    from scipy.sparse import csr_matrix

    n = len(x)
    index, sims = nearest(x, x, k, exclude=np.arange(n))
    index = np.concatenate([np.arange(n)[:, None], index], axis=1)
    distance = np.concatenate([np.zeros((n, 1)), np.sqrt(np.maximum(2.0 - 2.0 * sims.astype(np.float64), 0.0))],
                              axis=1)
    missing = index < 0  # a row the search did not reach: as far as can be
    index[missing], distance[missing] = (np.flatnonzero(missing) // (k + 1) + 1) % n, 2.0
    return csr_matrix((distance.ravel(), index.ravel(), np.arange(0, n * (k + 1) + 1, k + 1)), shape=(n, n))


def outliers(z: np.ndarray, threshold: float = OUTLIER_Z) -> list[int]:
    """Rows whose outlier z-score exceeds the threshold, farthest first."""
    return sorted(np.flatnonzero(z > threshold).tolist(), key=lambda i: -z[i])
