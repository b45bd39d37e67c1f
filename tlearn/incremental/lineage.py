"""The lineage of an extended run: the steps that made it, its classes, and the images it is evaluated on.

config.yaml's `lineage` holds one entry per step (the first fit, then each `tlearn extend`): method, data folder,
its val fraction and seed (so its splits can be made again exactly), classes added, images added per class.
"""
from __future__ import annotations

import copy
import dataclasses
import logging
import unicodedata
from pathlib import Path

from ..constants import DEFAULT_VAL_FRACTION
from ..data.layout import DataSplits, Sample, load_splits
from ..errors import DataError, TlearnError
from ..hashing import file_digest
from ..runs.run import Run

log = logging.getLogger("tlearn")


def parent_strategy(parent: Run) -> str:
    return parent.strategy.name


def _normal(name: str) -> str:
    return unicodedata.normalize("NFKC", name).strip().casefold()


def added_classes(old: list[str], new: list[str], data: str) -> list[str]:
    """NEWDATA's classes that are not the run's. A folder named like a known class but for case, spacing or
    Unicode form is refused: it is almost surely the same class, and a second output for it would split it."""
    known = {_normal(c): c for c in old}
    seen: dict[str, str] = {}
    for c in new:
        if c in old:
            continue
        if _normal(c) in known:
            raise DataError(f"class folder {c!r} in {data} differs from the run's class {known[_normal(c)]!r} only in "
                            f"case, spacing or Unicode form; rename it to {known[_normal(c)]!r} to add images to that "
                            "class, or give it a clearly different name for a new class.")
        if _normal(c) in seen:
            raise DataError(f"class folders {seen[_normal(c)]!r} and {c!r} in {data} differ only in case, spacing or "
                            "Unicode form; merge them or rename one.")
        seen[_normal(c)] = c
    return [c for c in new if c not in old]


def remap(samples: list[Sample], source: list[str], target: list[str]) -> list[Sample]:
    index = {c: i for i, c in enumerate(target)}
    return [dataclasses.replace(s, label=index[source[s.label]]) for s in samples]  # keeps each image's group


def parent_lineage(parent: Run) -> list[dict]:
    """The steps that made the parent: its own lineage, or for a fitted run one step, the fit."""
    if parent.sections.lineage:
        return copy.deepcopy(parent.sections.lineage)
    fit, data = parent.fit, parent.data
    return [{"step": 0, "run": str(parent.path), "method": parent_strategy(parent), "data": data.root,
             "val_fraction": fit.val_fraction, "seed": fit.seed, "group_by": fit.group_by,
             "classes_added": list(parent.classes), "train_images": data.counts.get("train")}]


def lineage_splits(lineage: list[dict], classes: list[str]) -> tuple[list[DataSplits], list[str]]:
    """Each lineage step's data re-split as it was (root, val_fraction, seed), labels by RUN2's classes; and the
    folders that are gone (their val/test are left out of RUN2's metrics)."""
    found, gone = [], []
    for step in lineage:
        root = step.get("data")
        if not root or not Path(root).exists():
            gone.append(str(root))
            continue
        try:
            s = load_splits(root, step.get("val_fraction", DEFAULT_VAL_FRACTION), step.get("seed", 0), step.get("group_by"),
                            min_classes=1)
        except TlearnError as exc:
            log.warning("lineage data %s cannot be read any more (%s); its val/test are left out", root, exc)
            gone.append(str(root))
            continue
        if any(c not in classes for c in s.classes):
            gone.append(str(root))
            continue
        found.append(DataSplits(s.root, classes, *(remap(s.split(n), s.classes, classes)
                                                   for n in ("train", "val", "test")), s.val_source, s.skipped))
    return found, gone


def repeated_images(new: list[Sample], held: list[DataSplits]) -> dict[str, list[Sample]]:
    """split -> the images of `new` whose content (sha256) is already one of that split's images in `held`."""
    def digest(s: Sample) -> str | None:
        try:
            return file_digest(s.path)
        except OSError:
            return None  # unreadable: training lists it as skipped

    new_digests = [(s, digest(s)) for s in new]
    out: dict[str, list[Sample]] = {}
    for split in ("train", "val", "test"):
        known = {digest(s) for part in held for s in part.split(split)} - {None}
        found = [s for s, d in new_digests if d in known]
        if found:
            out[split] = found
    return out


def union(parts: list[list[Sample]]) -> list[Sample]:
    """The samples of all parts, an image that is in several (by content: a copied test folder) once."""
    seen, out = set(), []
    for part in parts:
        for s in part:
            try:
                key = file_digest(s.path)
            except OSError:
                key = str(s.path)  # unreadable: evaluation lists it as skipped
            if key not in seen:
                seen.add(key)
                out.append(s)
    return out


def lineage_samples(run: Run, split: str) -> list[Sample]:
    """The val or test images of an extended run: those of every data folder in its lineage still on disk."""
    parts, _ = lineage_splits(run.sections.lineage, run.classes)
    return union([p.split(split) for p in parts])
