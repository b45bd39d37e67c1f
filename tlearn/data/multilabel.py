"""Multi-label manifests: images that carry several labels at once (a chest X-ray with effusion and infiltration).

Two CSV forms are multi-label tasks:
- path,labels[,split][,group]: `labels` holds '|'-separated label names ("Effusion|Infiltration");
- one-hot: path and one 0/1 column per label (optionally split and group), e.g. path,cat,dog,split.
classes are the labels (sorted names for the '|' form, the column order for the one-hot form). empty_label
(e.g. "No Finding") names a label that excludes all others: it becomes the empty set, not a class.
An empty cell is refused (a missing annotation is not "no finding"; write the empty label and pass it).
"""
from __future__ import annotations

import csv
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..constants import DEFAULT_VAL_FRACTION, MAX_LABELS
from ..errors import DataError
from ..files import spreadsheet_plain
from .manifest_paths import ManifestPaths
from .samples import SPLITS, DataSplits, Sample

TASK_SINGLE, TASK_MULTILABEL = "single-label", "multilabel"
SEPARATOR = "|"
_RESERVED = ("path", "split", "group")


@dataclass(frozen=True)
class MultiLabelSample(Sample):
    """A sample with a set of labels (indices into classes); `label` is 0 for code that needs a class index."""

    labels: tuple[int, ...] = ()


def is_multilabel(samples: Sequence[Sample]) -> bool:
    return any(isinstance(s, MultiLabelSample) for s in samples)


def refuse_multilabel(splits: DataSplits, what: str) -> None:
    """A DataError for the commands that do not handle multi-label tasks yet."""
    if is_multilabel(splits.train):
        raise DataError(f"{splits.root} is a multi-label manifest, and {what} handles one label per image only "
                        "so far; use `tlearn fit` with --strategy linear-probe or finetune.")


def label_matrix(samples: Sequence[Sample], num_classes: int) -> np.ndarray:
    """(n, num_classes) 0/1 float32 targets of multi-label samples."""
    y = np.zeros((len(samples), num_classes), dtype=np.float32)
    for i, s in enumerate(samples):
        y[i, list(getattr(s, "labels", ()))] = 1.0
    return y


def _header(csv_path: Path) -> list[str]:
    with open(csv_path, newline="") as f:
        row = next(csv.reader(f), None)
    return [c.strip().lower() for c in row or []]


def manifest_kind(csv_path: str | Path) -> str:
    """TASK_MULTILABEL for a `labels` or one-hot manifest, TASK_SINGLE for path,label; DataError for a mix."""
    csv_path = Path(csv_path)
    if csv_path.suffix.lower() != ".csv" or not csv_path.is_file():
        return TASK_SINGLE
    fields = _header(csv_path)
    if "label" in fields and "labels" in fields:
        raise DataError(f"manifest {csv_path} has both a `label` and a `labels` column; keep `label` for one class "
                        "per image, or `labels` ('|'-separated) for several, not both.")
    if "labels" in fields:
        return TASK_MULTILABEL
    if "path" in fields and "label" not in fields and [c for c in fields if c not in _RESERVED]:
        return TASK_MULTILABEL  # one-hot columns; their values are checked when read
    return TASK_SINGLE


@dataclass
class _Row:
    path: Path
    labels: frozenset[str]
    split: str | None
    group: str | None


def _read_rows(csv_path: Path, empty_label: str | None) -> tuple[list[_Row], list[str]]:
    """(rows, classes in output order)."""
    rows: list[_Row] = []
    paths = ManifestPaths(csv_path)
    with open(csv_path, newline="") as f:
        reader = csv.DictReader(f)
        raw_fields = [c for c in (reader.fieldnames or []) if c]
        fields = [c.strip().lower() for c in raw_fields]
        if "path" not in fields:
            raise DataError(f"manifest {csv_path} needs a `path` column (path,labels or path + one 0/1 column per "
                            "label).")
        one_hot = [name.strip() for name, low in zip(raw_fields, fields) if low not in (*_RESERVED, "labels")]
        if "labels" in fields:
            one_hot = []
        for line, raw in enumerate(reader, start=2):
            row = {k.strip(): spreadsheet_plain(v or "").strip() for k, v in raw.items() if k}
            low = {k.lower(): v for k, v in row.items()}
            if not low.get("path"):
                raise DataError(f"{csv_path} line {line}: empty path.")
            if one_hot:
                bad = [c for c in one_hot if row.get(c) not in ("0", "1")]
                if bad:
                    raise DataError(f"{csv_path} line {line}: one-hot column(s) {bad} must hold 0 or 1, not "
                                    f"{[row.get(c) for c in bad]}.")
                names = {c for c in one_hot if row[c] == "1"}
            else:
                names = {n.strip() for n in low.get("labels", "").split(SEPARATOR) if n.strip()}
                if not names:
                    raise DataError(f"{csv_path} line {line}: empty labels. Write every image's labels; for an image "
                                    "with none, write a label such as 'No Finding' and pass --empty-label "
                                    "'No Finding'.")
            if empty_label is not None and empty_label in names:
                if len(names) > 1:
                    raise DataError(f"{csv_path} line {line}: {empty_label!r} (--empty-label) excludes all other "
                                    f"labels, but the row also has {sorted(names - {empty_label})}.")
                names = set()
            split = low.get("split") or None
            if split is not None and split not in SPLITS:
                raise DataError(f"{csv_path} line {line}: split must be one of {SPLITS}, not {split!r}.")
            rows.append(_Row(paths.path(low["path"], line), frozenset(names), split, low.get("group") or None))
    paths.warn()
    if not rows:
        raise DataError(f"manifest {csv_path} has no rows.")
    if one_hot:
        classes = [c for c in one_hot if c != empty_label]
    else:
        classes = sorted({n for r in rows for n in r.labels})
    if len(classes) > MAX_LABELS:
        raise DataError(f"manifest {csv_path} has {len(classes)} labels; a multi-label task takes at most {MAX_LABELS} "
                        "(each label is a probe of its own). Merge rare labels, or split the labels over several "
                        "manifests.")
    return rows, classes


def _samples(rows: Sequence[_Row], classes: list[str]) -> list[MultiLabelSample]:
    index = {c: k for k, c in enumerate(classes)}
    return [MultiLabelSample(r.path, 0, r.group, labels=tuple(sorted(index[n] for n in r.labels))) for r in rows]


def _holdout(rows: list[_Row], fraction: float, seed: int) -> tuple[list[_Row], list[_Row], str]:
    """A random fraction of train (whole groups when the manifest has a group column) held out for val."""
    if fraction <= 0:
        return rows, [], "none (--val-fraction 0): thresholds from train out-of-fold predictions"
    rng = random.Random(seed)
    if all(r.group for r in rows):
        groups = sorted({r.group for r in rows})
        rng.shuffle(groups)
        target, chosen, taken = fraction * len(rows), set(), 0
        sizes = Counter(r.group for r in rows)
        for g in groups:
            if taken >= target:
                break
            chosen.add(g)
            taken += sizes[g]
        val = [r for r in rows if r.group in chosen]
        how = f"{len(val) / len(rows):.0%} of train held out by group ({len(chosen)} groups, seed {seed})"
    else:
        order = list(range(len(rows)))
        rng.shuffle(order)
        keep = set(order[:max(1, round(fraction * len(rows)))])
        val = [r for i, r in enumerate(rows) if i in keep]
        how = f"{fraction:.0%} of train held out (random, seed {seed})"
    val_ids = {id(r) for r in val}
    train = [r for r in rows if id(r) not in val_ids]
    if not train:
        raise DataError("too few training images to hold out a validation split; lower --val-fraction.")
    return train, val, how


def load_multilabel_splits(csv_path: str | Path, val_fraction: float = DEFAULT_VAL_FRACTION, seed: int = 0,
                           empty_label: str | None = None) -> DataSplits:
    """A multi-label manifest as train/val/test samples; with no val rows, part of train is held out."""
    csv_path = Path(csv_path).expanduser().resolve()
    rows, classes = _read_rows(csv_path, empty_label)
    if empty_label is not None and not any(not r.labels for r in rows):
        raise DataError(f"--empty-label {empty_label!r} appears in no row of {csv_path}; check its spelling "
                        f"(labels seen: {classes[:10]}).")
    if len(classes) < 1:
        raise DataError(f"{csv_path} has no labels other than the empty label {empty_label!r}.")
    by_split: dict[str, list[_Row]] = {s: [r for r in rows if (r.split or "train") == s] for s in SPLITS}
    if not by_split["train"]:
        raise DataError(f"manifest {csv_path} has no train rows.")
    if by_split["val"]:
        val_source = "val split"
    else:
        by_split["train"], by_split["val"], val_source = _holdout(by_split["train"], val_fraction, seed)
    absent = [c for k, c in enumerate(classes) if not any(c in r.labels for r in by_split["train"])]
    if len(absent) == len(classes):
        raise DataError(f"no train row of {csv_path} has a label; a multi-label task needs positive examples.")
    return DataSplits(str(csv_path), classes, *(_samples(by_split[s], classes) for s in SPLITS), val_source)


def read_multilabel_folder(csv_path: str | Path, classes: list[str],
                           empty_label: str | None = None) -> list[MultiLabelSample]:
    """Every row of a multi-label manifest (any split), for evaluating a trained run with these classes."""
    csv_path = Path(csv_path).expanduser().resolve()
    if manifest_kind(csv_path) != TASK_MULTILABEL:
        raise DataError(f"{csv_path} is not a multi-label manifest (path,labels or path + 0/1 columns), and the "
                        "run is a multi-label run.")
    rows, found = _read_rows(csv_path, empty_label)
    unknown = sorted(set(found) - set(classes))
    if unknown:
        raise DataError(f"{csv_path} has labels the model does not know: {unknown}; the model's labels are "
                        f"{classes}.")
    return _samples(rows, classes)
