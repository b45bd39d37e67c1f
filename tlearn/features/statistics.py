"""Sufficient statistics of a run's training features: per-class counts and sums and the feature Gram matrix.

They are sums over images, so statistics of several batches of data add up to those of all the data at once,
in any order; the analytic head (tlearn.incremental.analytic, `tlearn extend`) is solved from them alone,
without the images.
Kept in RUN/head_stats.safetensors (float64, the Gram matrix as its upper triangle; a few MB).

space: what the sums are over. "features" (the pooled backbone features, for the raw and standardized
treatments, whose affine parameters are derived from these very sums) or "l2" (the features at unit length
times sqrt(d), a per-image treatment fixed when the first run chose it).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import TlearnError
from ..files import atomic_path

STATS_FILE = "head_stats.safetensors"
STATS_FORMAT = 1
SPACES = ("features", "l2")


def space_for(treatment: str) -> str:
    """The space the statistics of a probe with this feature treatment are kept in."""
    return "l2" if treatment == "l2" else "features"


def l2_normalize(X: np.ndarray) -> np.ndarray:
    """Unit length, scaled by sqrt(d) so each dimension is of order 1 (the same C grid suits every treatment)."""
    norm = np.linalg.norm(X, axis=1, keepdims=True)
    return X / np.maximum(norm, 1e-12) * np.sqrt(X.shape[1])


def to_space(X: np.ndarray, space: str) -> np.ndarray:
    """X as float64 in the given space: the features as they are, or l2_normalize(X)."""
    X = np.asarray(X, dtype=np.float64)
    return l2_normalize(X) if space == "l2" else X


@dataclass
class FeatureStatistics:
    """counts (K,), sums (K, d) and gram (d, d) = sum of x x^T over every image, all float64."""

    classes: list[str]
    counts: np.ndarray
    sums: np.ndarray
    gram: np.ndarray
    space: str = "features"
    treatment: str = "standardized"

    @classmethod
    def from_features(cls, X: np.ndarray, y: np.ndarray, classes: list[str], space: str,
                      treatment: str) -> "FeatureStatistics":
        """X: pooled backbone features (n, d); y: indices into classes."""
        Z = to_space(X, space)
        y = np.asarray(y, dtype=np.int64)
        K = len(classes)
        sums = np.zeros((K, Z.shape[1]))
        np.add.at(sums, y, Z)
        return cls(list(classes), np.bincount(y, minlength=K).astype(np.float64), sums, Z.T @ Z, space, treatment)

    @property
    def dim(self) -> int:
        return self.gram.shape[0]

    @property
    def total(self) -> float:
        return float(self.counts.sum())

    def with_classes(self, classes: list[str]) -> "FeatureStatistics":
        """The same statistics over a longer class list (this one's classes first, in any positions)."""
        missing = [c for c in self.classes if c not in classes]
        if missing:
            raise ValueError(f"classes {missing} are not in the new class list")
        index = [classes.index(c) for c in self.classes]
        counts, sums = np.zeros(len(classes)), np.zeros((len(classes), self.dim))
        counts[index], sums[index] = self.counts, self.sums
        return FeatureStatistics(list(classes), counts, sums, self.gram.copy(), self.space, self.treatment)

    def __add__(self, other: "FeatureStatistics") -> "FeatureStatistics":
        if (self.space, self.treatment, self.dim) != (other.space, other.treatment, other.dim):
            raise ValueError(f"statistics of different kinds: {self.space}/{self.treatment}/{self.dim} vs "
                             f"{other.space}/{other.treatment}/{other.dim}")
        classes = self.classes + [c for c in other.classes if c not in self.classes]
        a, b = self.with_classes(classes), other.with_classes(classes)
        return FeatureStatistics(classes, a.counts + b.counts, a.sums + b.sums, a.gram + b.gram, self.space,
                                 self.treatment)

    def save(self, path: str | Path) -> None:
        from safetensors.numpy import save_file

        upper = self.gram[np.triu_indices(self.dim)]
        meta = {"format": str(STATS_FORMAT), "space": self.space, "treatment": self.treatment,
                "classes": json.dumps(self.classes), "dim": str(self.dim)}
        with atomic_path(path) as tmp:
            save_file({"counts": self.counts, "sums": self.sums, "gram_upper": upper}, str(tmp), metadata=meta)

    @classmethod
    def load(cls, path: str | Path) -> "FeatureStatistics":
        from safetensors import safe_open

        path = Path(path)
        try:
            with safe_open(str(path), framework="numpy") as f:
                meta = f.metadata() or {}
                counts, sums, upper = (f.get_tensor(k) for k in ("counts", "sums", "gram_upper"))
            classes, d = json.loads(meta["classes"]), int(meta["dim"])
            space, treatment = meta["space"], meta["treatment"]
        except Exception as exc:  # any damage: a clear message beats a traceback from the format library
            raise TlearnError(f"{path} is damaged or not tlearn head statistics ({exc!r}); refit the run.") from None
        problem = _problem(classes, d, space, counts, sums, upper)
        if problem:
            raise TlearnError(f"{path} is inconsistent ({problem}); the file was edited or damaged. Refit the run.")
        gram = np.zeros((d, d))
        gram[np.triu_indices(d)] = upper
        gram = gram + np.triu(gram, 1).T
        return cls(list(classes), counts.astype(np.float64), sums.astype(np.float64), gram, space, str(treatment))


def _problem(classes, d: int, space, counts: np.ndarray, sums: np.ndarray, upper: np.ndarray) -> str | None:
    """What is wrong with statistics read back from a file (None when they are usable), checked before any
    allocation of their size."""
    if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
        return "classes is not a list of names"
    if space not in SPACES:
        return f"space {space!r} is not one of {SPACES}"
    if d < 1:
        return f"dimension {d} is not positive"
    K = len(classes)
    if counts.shape != (K,) or sums.shape != (K, d) or upper.shape != (d * (d + 1) // 2,):
        return f"shapes counts {counts.shape}, sums {sums.shape}, gram {upper.shape} do not fit {K} classes of " \
               f"dimension {d}"
    for name, a in (("counts", counts), ("sums", sums), ("gram", upper)):
        if not np.issubdtype(a.dtype, np.floating) and not np.issubdtype(a.dtype, np.integer):
            return f"{name} are {a.dtype}, not numbers"
        if not np.isfinite(a).all():
            return f"{name} hold NaN or infinite values"
    if (counts < 0).any() or (counts != np.round(counts)).any():
        return "counts are not whole numbers of images at least 0"
    diagonal = upper[np.cumsum(np.r_[0, np.arange(d, 1, -1)])]
    if (diagonal < 0).any():
        return "the Gram matrix has a negative diagonal (a sum of squares)"
    return None
