"""Nested, stratified label fractions of a training split, and the CSV manifests that hand them to fit.

For one seed, every class's training images are shuffled once; a fraction f keeps the first
max(min_per_class, round(f * n_class)) of each class. Because the count grows with f and the order is fixed,
each smaller subset lies inside every larger one (nested), and class proportions are kept (stratified).
When the images carry groups (patients), whole groups are drawn instead (data.groups.grouped_subsets): a fraction
then counts images, rounded up to whole patients, and the manifests carry the group column.
"""
from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..data.groups import grouped_subsets
from ..data.layout import DataSplits, Sample
from ..errors import TlearnError
from ..files import spreadsheet_row


def check_fractions(fractions: Sequence[float]) -> list[float]:
    """Sorted, de-duplicated fractions in (0, 1]; a clear error otherwise."""
    out = sorted({float(f) for f in fractions})
    bad = [f for f in out if not 0.0 < f <= 1.0]
    if not out or bad:
        raise TlearnError(f"--fractions must be numbers in (0, 1], e.g. 0.1,0.3,1.0; got {list(fractions)}.")
    return out


def class_count(n: int, fraction: float, min_per_class: int) -> int:
    """How many of a class's n images a fraction keeps (never fewer than min_per_class, never more than n)."""
    return min(n, max(min_per_class, int(round(fraction * n))))


def nested_fractions(train: Sequence[Sample], fractions: Sequence[float], seed: int,
                     min_per_class: int = 1) -> dict[float, list[Sample]]:
    """fraction -> training subset; nested across fractions, stratified by label, fixed by seed; whole groups
    when the samples carry groups."""
    if any(s.group is not None for s in train):
        return grouped_subsets(train, check_fractions(fractions), seed, min_per_class, class_count)
    by_class: dict[int, list[Sample]] = defaultdict(list)
    for s in sorted(train, key=lambda s: (s.label, str(s.path))):
        by_class[s.label].append(s)
    rng = np.random.default_rng(seed)
    order = {label: [items[i] for i in rng.permutation(len(items))] for label, items in sorted(by_class.items())}
    return {
        f: [s for label, items in order.items() for s in items[:class_count(len(items), f, min_per_class)]]
        for f in check_fractions(fractions)
    }


def manifest_text(subset: Sequence[Sample], splits: DataSplits) -> str:
    """CSV (path,label,split[,group]) with the subset as train and the full val/test splits, paths absolute; the
    group column only when the data has groups (so existing studies keep their manifests, hence their cells)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    grouped = splits.has_groups
    w.writerow(["path", "label", "split"] + (["group"] if grouped else []))
    for split, samples in (("train", subset), ("val", splits.val), ("test", splits.test)):
        for s in samples:
            w.writerow(spreadsheet_row([str(Path(s.path).resolve()), splits.classes[s.label], split]
                                       + ([s.group or ""] if grouped else [])))
    return buf.getvalue()


def fraction_label(fraction: float) -> str:
    """A file-name-safe spelling of a fraction: 0.1 -> 'f0.1', 1.0 -> 'f1'."""
    return f"f{fraction:g}"
