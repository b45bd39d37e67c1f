"""The selection methods on features (numpy and scikit-learn only): which rows of a feature matrix to label next.

Every method picks from the rows still `available` in a Picker, which also removes a picked row's near copies
(the duplicate groups of tlearn.data.duplicates) and the rows already labelled, so no two copies are ever picked.

- typiclust (Hacohen et al., ICML 2022): k-means into |labelled| + budget clusters; from the largest clusters
  with the fewest labels, the most typical image (highest inverse mean distance to its nearest neighbours).
- probcover (Yehuda et al., NeurIPS 2022): balls of radius delta around each image, delta the largest radius
  whose balls stay 95% pure with respect to a k-means clustering; greedily the image whose ball covers the most
  images not yet covered.
- margin: the probe's least sure images (smallest gap between its two most probable classes), the
  MARGIN_CANDIDATES x budget least sure, spread by k-center greedy (each pick the farthest from everything labelled
  or picked).
- badge: k-means++ draws on features scaled by the probe's uncertainty (1 - margin), an inexpensive stand-in for
  BADGE's gradient embedding (Ash et al., ICLR 2020).
- random: the baseline.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.cluster import KMeans, MiniBatchKMeans
from sklearn.decomposition import PCA
from sklearn.neighbors import NearestNeighbors

from ..data.duplicates import unit_features

EMBED_DIM = 128  # features are centred, unit length and reduced by PCA to this many dimensions before distances
TYPICALITY_NEIGHBOURS = 20  # the paper's k
MINIBATCH_ABOVE = 20000  # pools larger than this are clustered by MiniBatchKMeans
PURITY = 0.95  # probcover's ball purity (the paper's alpha)
MARGIN_CANDIDATES = 10  # margin: the k-center spread runs over this many least-sure images per pick


@dataclass
class Pick:
    index: int  # row of the feature matrix
    why: str  # one sentence for to_label.csv and the contact sheet


class Picker:
    """Which rows may still be picked: not labelled, not picked, not a near copy of either."""

    def __init__(self, n: int, candidates: Sequence[int], duplicate_groups: Sequence[Sequence[int]] = ()):
        self.available = np.zeros(n, dtype=bool)
        self.available[list(candidates)] = True
        self._group: dict[int, Sequence[int]] = {i: g for g in duplicate_groups for i in g}
        self.picks: list[Pick] = []
        self.copies_left_out = 0

    def block(self, index: int) -> None:
        """index is labelled or picked: it and its near copies are no longer available."""
        for j in self._group.get(index, (index,)):
            if j != index and self.available[j]:
                self.copies_left_out += 1
            self.available[j] = False
        self.available[index] = False

    def take(self, index: int, why: str) -> None:
        self.picks.append(Pick(int(index), why))
        self.block(int(index))

    @property
    def left(self) -> int:
        return int(self.available.sum())


def embed(features: np.ndarray, seed: int = 0) -> np.ndarray:
    """Centred, unit-length features reduced by PCA to EMBED_DIM dimensions (float32): the space every method
    measures distances in."""
    z = unit_features(features)
    if z.shape[1] > EMBED_DIM and len(z) > EMBED_DIM:
        z = PCA(EMBED_DIM, random_state=seed).fit_transform(z).astype(np.float32)
    return z


def _kmeans(z: np.ndarray, k: int, seed: int) -> np.ndarray:
    k = max(1, min(k, len(z)))
    if len(z) > MINIBATCH_ABOVE:
        model = MiniBatchKMeans(k, random_state=seed, n_init=3, batch_size=4096)
    else:
        model = KMeans(k, random_state=seed, n_init=1)
    return model.fit_predict(z)


def typicality(z: np.ndarray, clusters: np.ndarray) -> np.ndarray:
    """1 / mean distance to the (up to) TYPICALITY_NEIGHBOURS nearest images of the same cluster; 0 for an image
    alone in its cluster."""
    typ = np.zeros(len(z))
    for c in np.unique(clusters):
        members = np.flatnonzero(clusters == c)
        if len(members) < 2:
            continue
        k = min(TYPICALITY_NEIGHBOURS, len(members) - 1)
        dist, _ = NearestNeighbors(n_neighbors=k + 1).fit(z[members]).kneighbors(z[members])
        typ[members] = 1.0 / (dist[:, 1:].mean(1) + 1e-8)
    return typ


def typiclust(z: np.ndarray, budget: int, picker: Picker, labelled: Sequence[int] = (), seed: int = 0) -> Picker:
    clusters = _kmeans(z, len(labelled) + budget, seed)
    typ = typicality(z, clusters)
    sizes = np.bincount(clusters)
    covered = np.bincount(clusters[list(labelled)], minlength=len(sizes)) if len(labelled) else np.zeros(len(sizes), int)
    order = np.argsort(-sizes, kind="stable")
    size_rank = {int(c): r + 1 for r, c in enumerate(order)}
    ids = np.arange(len(sizes))
    while len(picker.picks) < budget and picker.left:
        open_ = ids[np.bincount(clusters[picker.available], minlength=len(sizes)) > 0]
        c = int(open_[np.lexsort((open_, -sizes[open_], covered[open_]))[0]])  # fewest labels, then largest
        members = np.flatnonzero((clusters == c) & picker.available)
        best = members[np.argmax(typ[members])]
        state = "no labelled image" if covered[c] == 0 else f"{covered[c]} labelled image(s)"
        picker.take(best, f"typiclust: most typical image of cluster {size_rank[c]} of {len(sizes)} by size "
                          f"({sizes[c]} images, {state})")
        covered[c] += 1
    return picker


def _nearest_other_cluster(z: np.ndarray, clusters: np.ndarray, chunk: int = 1024) -> np.ndarray:
    """Each row's distance to the nearest row of another cluster."""
    sq = (z ** 2).sum(1)
    out = np.full(len(z), np.inf)
    for start in range(0, len(z), chunk):
        d2 = sq[start:start + chunk, None] + sq[None, :] - 2 * z[start:start + chunk] @ z.T
        d2[clusters[start:start + chunk, None] == clusters[None, :]] = np.inf
        out[start:start + chunk] = np.sqrt(np.maximum(d2.min(1), 0))
    return out


def probcover_radius(z: np.ndarray, k: int, seed: int = 0) -> float:
    """The largest radius whose balls are PURITY pure with respect to a k-means clustering into k clusters."""
    clusters = _kmeans(z, max(2, k), seed)
    return float(np.quantile(_nearest_other_cluster(z, clusters), 1 - PURITY))


def probcover(z: np.ndarray, budget: int, picker: Picker, labelled: Sequence[int] = (), seed: int = 0,
              radius: float | None = None, clusters: int | None = None) -> Picker:
    delta = radius if radius is not None else probcover_radius(z, clusters or len(labelled) + budget, seed)
    graph = NearestNeighbors(radius=delta).fit(z).radius_neighbors_graph(z, mode="connectivity").tocsr()
    uncovered = np.ones(len(z), dtype=bool)
    for i in labelled:
        uncovered[graph.indices[graph.indptr[i]:graph.indptr[i + 1]]] = False
    while len(picker.picks) < budget and picker.left:
        gain = np.asarray(graph @ uncovered.astype(np.float64)).ravel()
        gain[~picker.available] = -1
        best = int(np.argmax(gain))
        if gain[best] <= 0:  # everything is covered: spread the rest by k-center
            return k_center(z, budget, picker, [*labelled, *(p.index for p in picker.picks)],
                            note="probcover: every image covered; ")
        picker.take(best, f"probcover: covers {int(gain[best])} image(s) not yet covered within distance "
                          f"{delta:.3f}")
        uncovered[graph.indices[graph.indptr[best]:graph.indptr[best + 1]]] = False
    return picker


def _min_distance(z: np.ndarray, centres: np.ndarray, chunk: int = 2048) -> np.ndarray:
    if len(centres) == 0:
        return np.full(len(z), np.inf)
    out = np.empty(len(z))
    sc = (centres ** 2).sum(1)
    for start in range(0, len(z), chunk):
        block = z[start:start + chunk]
        d2 = (block ** 2).sum(1)[:, None] + sc[None, :] - 2 * block @ centres.T
        out[start:start + chunk] = np.sqrt(np.maximum(d2.min(1), 0))
    return out


def k_center(z: np.ndarray, budget: int, picker: Picker, labelled: Sequence[int] = (),
             candidates: np.ndarray | None = None, note: str = "", reasons: dict[int, str] | None = None) -> Picker:
    """Greedy k-center over `candidates` (default: every available row): each pick the farthest from all
    labelled and picked rows."""
    pool = np.flatnonzero(picker.available) if candidates is None else np.asarray(candidates)
    dist = _min_distance(z[pool], z[list(labelled)])
    while len(picker.picks) < budget:
        ok = picker.available[pool]
        if not ok.any():
            break
        j = int(np.argmax(np.where(ok, dist, -1)))
        i = int(pool[j])
        far = "no labelled image yet" if not np.isfinite(dist[j]) else f"distance {dist[j]:.3f} from the nearest " \
                                                                       "labelled or picked image"
        picker.take(i, f"{note}{(reasons or {}).get(i, '')}{far}")
        dist = np.minimum(dist, _min_distance(z[pool], z[[i]]))
    return picker


def margins(probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(p(top) - p(second), the two most probable classes) of each row."""
    top2 = np.argsort(-probs, axis=1)[:, :2]
    p = np.take_along_axis(probs, top2, axis=1)
    return p[:, 0] - p[:, 1], top2


def _unsure(probs: np.ndarray, i: int, margin: float, top2: np.ndarray, classes: Sequence[str]) -> str:
    a, b = top2[i]
    return (f"probe unsure: {classes[a]} {probs[i, a]:.2f} vs {classes[b]} {probs[i, b]:.2f} "
            f"(margin {margin:.2f}); ")


def margin_coverage(z: np.ndarray, probs: np.ndarray, classes: Sequence[str], budget: int, picker: Picker,
                    labelled: Sequence[int]) -> Picker:
    """The MARGIN_CANDIDATES x budget least-sure available rows, spread by k-center."""
    m, top2 = margins(probs)
    avail = np.flatnonzero(picker.available)
    unsure = avail[np.argsort(m[avail], kind="stable")[:MARGIN_CANDIDATES * budget]]
    reasons = {int(i): "margin: " + _unsure(probs, i, m[i], top2, classes) for i in unsure}
    k_center(z, budget, picker, labelled, candidates=unsure, reasons=reasons)
    if len(picker.picks) < budget:  # copies took candidates: the rest from everything still available
        k_center(z, budget, picker, [*labelled, *(p.index for p in picker.picks)], note="margin: ")
    return picker


def badge(z: np.ndarray, probs: np.ndarray, classes: Sequence[str], budget: int, picker: Picker,
          labelled: Sequence[int], seed: int = 0) -> Picker:
    """k-means++ draws (seeded from the labelled rows) on z scaled by 1 - margin."""
    m, top2 = margins(probs)
    g = z * (1.0 - m)[:, None]
    rng = np.random.default_rng(seed)
    d2 = _min_distance(g, g[list(labelled)]) ** 2
    while len(picker.picks) < budget and picker.left:
        w = np.where(picker.available, np.where(np.isfinite(d2), d2, 1.0), 0.0)
        if w.sum() <= 0:
            w = picker.available.astype(float)
        i = int(rng.choice(len(g), p=w / w.sum()))
        picker.take(i, "badge: " + _unsure(probs, i, m[i], top2, classes) + "drawn far from the labelled and picked "
                       "images (k-means++)")
        d2 = np.minimum(d2, _min_distance(g, g[[i]]) ** 2)
    return picker


def random_pick(budget: int, picker: Picker, seed: int = 0) -> Picker:
    rng = np.random.default_rng(seed)
    for i in rng.permutation(len(picker.available)):
        if len(picker.picks) >= budget:
            break
        if picker.available[i]:
            picker.take(int(i), "random: drawn uniformly (the baseline)")
    return picker


def choose(method: str, z: np.ndarray, budget: int, picker: Picker, labelled: Sequence[int] = (), seed: int = 0,
           probs: np.ndarray | None = None, classes: Sequence[str] = ()) -> list[Pick]:
    """`budget` picks (fewer when the picker runs out) by `method`; probs (the probe's, every row) for the methods
    that need labels."""
    if method in ("margin", "badge") and probs is None:
        raise ValueError(f"method {method!r} needs the probabilities of a probe fitted on labelled images")
    if method == "typiclust":
        typiclust(z, budget, picker, labelled, seed)
    elif method == "probcover":
        probcover(z, budget, picker, labelled, seed)
    elif method == "margin":
        margin_coverage(z, probs, classes, budget, picker, labelled)
    elif method == "badge":
        badge(z, probs, classes, budget, picker, labelled, seed)
    elif method == "random":
        random_pick(budget, picker, seed)
    else:
        raise ValueError(f"unknown selection method {method!r}")
    return picker.picks
