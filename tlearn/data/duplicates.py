"""Duplicate groups within and across splits: byte-identical files, and near copies found by the leakage check's
perceptual hash + thumbnail correlation or by the cosine similarity of the backbone's features. The one rule for
what counts as a copy: `tlearn doctor` reports these groups and `tlearn select` never picks two of one group."""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .leakage import NEAR_BITS, closest_copies, hamming, is_near, signatures
from .neighbours import nearest

# Two distinct files are near copies by their features when the cosine similarity of their (centred) backbone
# features reaches FEATURE_COSINE and their perceptual hashes are within NEAR_BITS bits (the second guards
# against two photos of one scene that the network sees alike).
FEATURE_COSINE = 0.95


class _UnionFind:
    def __init__(self, n: int):
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, i: int, j: int) -> None:
        self.parent[self.find(i)] = self.find(j)


def _group(paths, splits, labels, members: list[int], kind: str, **extra) -> dict:
    names = [splits[i] for i in members]
    return {"paths": [str(paths[i]) for i in members], "splits": names, "labels": [labels[i] for i in members],
            "kind": kind, "cross_split": len(set(names)) > 1,
            "label_conflict": len({labels[i] for i in members}) > 1, **extra}


def _most(values) -> float | None:
    present = [v for v in values if v is not None]
    return max(present) if present else None


def _best_by_features(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row's most cosine-similar other row and that similarity (features already unit length; beyond
    tlearn.data.neighbours.EXACT_UP_TO rows, among the candidates its search proposes)."""
    best, sim = nearest(features, features, 1, exclude=np.arange(len(features)))
    return best[:, 0], sim[:, 0]


def unit_features(features: np.ndarray) -> np.ndarray:
    """Centred (the set's mean removed: what all images share says nothing about sameness) and unit length."""
    x = features.astype(np.float32) - features.mean(0, keepdims=True)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def find_duplicates(paths: Sequence[Path], splits: Sequence[str], labels: Sequence[str],
                    digests: Sequence[str | None], cache_dir: str | Path | None,
                    features: np.ndarray | None = None, feature_rows: Sequence[int] = (),
                    cosine: float = FEATURE_COSINE) -> list[dict]:
    """Exact groups (one sha256, or one file listed twice) and near groups (distinct contents, linked by near-copy
    pairs), cross-split groups first. features[k] belongs to paths[feature_rows[k]] (decodable images only)."""
    by_digest: dict[str, list[int]] = defaultdict(list)
    for i, d in enumerate(digests):
        if d:
            by_digest[d].append(i)
    groups = [_group(paths, splits, labels, m, "exact") for m in by_digest.values() if len(m) > 1]

    # near copies among distinct contents: one representative file per sha256
    reps = [m[0] for m in by_digest.values()]
    ok, hashes, vectors = signatures([paths[i] for i in reps], [digests[i] for i in reps], cache_dir)
    ok = [k for k in ok if hashes[k]]  # a flat image has no structure to compare
    pairs: dict[tuple[int, int], dict] = {}
    if len(ok) > 1:
        idx = np.array(ok)
        best, corr, dist, gap = closest_copies(hashes[idx], vectors[idx], hashes[idx], vectors[idx], NEAR_BITS,
                                               exclude=np.arange(len(idx)))
        for q, (b, c, d, g) in enumerate(zip(best, corr, dist, gap)):
            if b >= 0 and is_near(float(c), int(d), float(g)):
                key = tuple(sorted((int(idx[q]), int(idx[b]))))
                pairs.setdefault(key, {})["correlation"] = round(float(c), 4)
    if features is not None and len(feature_rows) > 1:
        rep_of = {i: k for k, i in enumerate(reps)}  # file index -> representative position
        rows = [(k, rep_of[i]) for k, i in enumerate(feature_rows) if i in rep_of]
        if len(rows) > 1:
            feats = unit_features(features[[k for k, _ in rows]])
            pos = np.array([r for _, r in rows])
            best, sim = _best_by_features(feats)
            for a, (b, s) in enumerate(zip(best, sim)):
                ra, rb = int(pos[a]), int(pos[b])
                if s >= cosine and hashes[ra] and hashes[rb] and \
                        int(hamming(hashes[ra:ra + 1], hashes[rb:rb + 1])[0, 0]) <= NEAR_BITS:
                    pairs.setdefault(tuple(sorted((ra, rb))), {})["cosine"] = round(float(s), 4)

    if pairs:
        uf = _UnionFind(len(reps))
        for a, b in pairs:
            uf.union(a, b)
        linked: dict[int, list[int]] = defaultdict(list)
        for r in sorted({r for pair in pairs for r in pair}):
            linked[uf.find(r)].append(r)
        evidence_of: dict[int, list[dict]] = defaultdict(list)  # group root -> its pairs' measures
        for (a, _), v in pairs.items():
            evidence_of[uf.find(a)].append(v)
        for root, members in linked.items():
            files = [i for r in members for i in by_digest[digests[reps[r]]]]
            evidence = evidence_of[root]
            groups.append(_group(paths, splits, labels, files, "near",
                                 correlation=_most(e.get("correlation") for e in evidence),
                                 cosine=_most(e.get("cosine") for e in evidence)))
    groups.sort(key=lambda g: (not g["cross_split"], g["kind"] != "exact", g["paths"]))
    return groups
