"""tlearn doctor: look at a dataset before training. Files, classes, duplicates (also across splits), label issues
and outliers, from the same feature cache that `tlearn fit` uses (a doctor run then a fit extracts nothing twice)."""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .._version import __version__
from ..constants import LABEL_RANKINGS
from ..data.layout import SPLITS, load_splits
from ..data.leakage import digest_or_none
from ..data.multilabel import refuse_multilabel
from ..errors import TlearnError
from ..features.extract import extract_features
from ..features.sharded import Extraction, fill_cache
from ..device import settle_runtime
from .classes import class_counts
from .config import DoctorConfig
from ..data.duplicates import find_duplicates
from .files import read_facts, summarize_files
from .labels import find_label_issues, out_of_sample_probabilities, outlier_scores, outliers

log = logging.getLogger("tlearn")

LISTED = 500  # entries of each long list kept in doctor.json; the counts cover all


@dataclass
class DoctorReport:
    """Everything doctor found; to_dict() is doctor.json."""

    data: str
    backbone: dict
    settings: dict
    counts: dict[str, int]
    classes: dict
    files: dict
    skipped: list[dict]
    duplicates: list[dict]
    label_issues: list[dict]
    outliers: list[dict]
    label_model: dict = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def cross_split_duplicates(self) -> list[dict]:
        return [g for g in self.duplicates if g["cross_split"]]

    def summary(self) -> dict:
        return {"images": sum(self.counts.values()), "classes": len(self.classes["rows"]),
                "unreadable": len(self.skipped), "file_outliers": len(self.files["outliers"]),
                "duplicate_groups": len(self.duplicates),
                "cross_split_duplicate_groups": len(self.cross_split_duplicates),
                "label_issues": len(self.label_issues), "outliers": len(self.outliers),
                "missing_classes": len(self.classes["missing"]), "imbalance": self.classes["imbalance"]}

    def to_dict(self) -> dict:
        return {"tool": "tlearn doctor", "version": __version__, "data": self.data, "summary": self.summary(),
                "backbone": self.backbone, "settings": self.settings, "counts": self.counts,
                "classes": self.classes, "files": {**self.files, "outliers": self.files["outliers"][:LISTED]},
                "skipped": self.skipped, "duplicates": self.duplicates[:LISTED],
                "label_issues": self.label_issues[:LISTED], "outliers": self.outliers[:LISTED],
                "label_model": self.label_model, "seconds": {k: round(v, 3) for k, v in self.seconds.items()}}


def _rows_of(kept: list, asked: list) -> list[int]:
    """Index in `asked` of each of `kept` (the same objects, in the same order, some left out)."""
    rows, j = [], 0
    for sample in kept:
        while asked[j] is not sample:
            j += 1
        rows.append(j)
        j += 1
    return rows


_D = DoctorConfig  # the defaults, declared once with the command-line options


def diagnose(data: str | Path, backbone: str = _D.backbone, *, weights: str | None = _D.weights,
             image_size: int | None = _D.image_size, ranking: str = _D.rank_by, seed: int = _D.seed,
             val_fraction: float = _D.val_fraction, device: str = _D.device, precision: str = _D.precision,
             cache_dir: str | None = _D.cache_dir, batch_size: int = _D.batch_size,
             num_workers: int | None = _D.num_workers, progress: bool = _D.progress) -> DoctorReport | None:
    """Examine DATA (any layout `fit` accepts, split the way `fit` would with the same seed and val_fraction).
    Under torchrun the features are extracted over all processes and rank 0 examines (None on the others).
    The keywords are DoctorConfig's fields (`ranking` is its rank_by)."""
    from ..runs.source import load_source  # the backbone and the data config exactly as fit resolves them

    if ranking not in LABEL_RANKINGS:
        raise TlearnError(f"ranking {ranking!r}: choose one of {', '.join(LABEL_RANKINGS)}.")
    seconds: dict[str, float] = {}
    start = time.perf_counter()
    splits = load_splits(data, val_fraction, seed)
    refuse_multilabel(splits, "tlearn doctor")
    entries = [(split, s) for split in SPLITS for s in splits.split(split)]
    paths = [s.path for _, s in entries]
    names = [split for split, _ in entries]
    labels = np.array([s.label for _, s in entries], dtype=np.int64)
    label_names = [splits.classes[k] for k in labels]

    # the same seed, device, precision and cache as `fit`, so fit finds every feature this computes
    torch.manual_seed(seed)
    torch_device, precision, cache = settle_runtime(device, precision, cache_dir)
    module, info = load_source(backbone, weights, image_size=image_size)
    t = time.perf_counter()
    filled = fill_cache([Extraction(module, [s for _, s in entries], info.data_config)], precision=precision,
                        device=device, batch_size=batch_size, cache_dir=cache, num_workers=num_workers,
                        progress=progress)
    if not filled.is_main:
        return None  # a torchrun worker: its share of the features is in rank 0's cache
    sharded = time.perf_counter() - t

    t = time.perf_counter()
    digests = [digest_or_none(p) for p in paths]
    facts = [read_facts(str(p), split) for p, split in zip(paths, names)]
    seconds["files"] = time.perf_counter() - t
    t = time.perf_counter()
    fs = extract_features(module, [s for _, s in entries], info.data_config, precision=precision,
                          device=torch_device, batch_size=batch_size, cache_dir=cache, num_workers=num_workers,
                          progress=progress, desc="doctor features")
    seconds["features"] = sharded + time.perf_counter() - t
    log.info("doctor: features of %d images (%d from cache) in %.1fs", len(fs.samples), fs.from_cache, fs.seconds)
    feature_rows = _rows_of(fs.samples, [s for _, s in entries])
    usable = {str(s.path) for s in fs.samples}

    t = time.perf_counter()
    duplicates = find_duplicates(paths, names, label_names, digests, cache, fs.features, feature_rows)
    seconds["duplicates"] = time.perf_counter() - t

    t = time.perf_counter()
    y = labels[feature_rows]
    probs, model = out_of_sample_probabilities(fs.features, y, len(splits.classes), seed)
    z = outlier_scores(fs.features, y)
    issues = []
    for row, suggested, score, kind in find_label_issues(probs, y, ranking, z):
        i = feature_rows[row]
        issues.append({"path": str(paths[i]), "split": names[i], "given": label_names[i],
                       "suggested": splits.classes[suggested] if suggested is not None else None,
                       "score": round(score, 4), "kind": kind,
                       "p_given": round(float(probs[row, y[row]]), 4), "outlier_z": round(float(z[row]), 2)})
    far = []
    for row in outliers(z):
        i = feature_rows[row]
        best = int(np.nanargmax(probs[row])) if not np.isnan(probs[row]).all() else int(y[row])
        far.append({"path": str(paths[i]), "split": names[i], "given": label_names[i],
                    "nearest_class": splits.classes[best], "score": round(float(z[row]), 2)})
    seconds["labels"] = time.perf_counter() - t
    seconds["total"] = time.perf_counter() - start
    from_cache = fs.from_cache - filled.extracted  # as found before the extraction split over processes
    model.update(ranking=ranking, features=fs.features.shape[1], from_cache=from_cache,
                 extracted=len(fs.samples) - from_cache)
    return DoctorReport(
        data=splits.root, backbone=info.to_dict(),
        settings={"seed": seed, "val_fraction": val_fraction, "val_source": splits.val_source,
                  "precision": precision, "device": str(torch_device), "ranking": ranking},
        counts=splits.counts(), classes=class_counts(splits, usable), files=summarize_files(facts),
        skipped=[s.to_dict() for s in list(splits.skipped) + list(fs.skipped)], duplicates=duplicates,
        label_issues=issues, outliers=far, label_model=model, seconds=seconds,
    )
