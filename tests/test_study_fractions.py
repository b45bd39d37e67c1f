"""Nested, stratified label fractions and the manifests that hand them to fit."""
from __future__ import annotations

import csv
import io
from collections import Counter
from pathlib import Path

import pytest

from tlearn.data.layout import DataSplits, Sample, load_splits
from tlearn.errors import TlearnError
from tlearn.study.fractions import check_fractions, class_count, manifest_text, nested_fractions


def _samples(counts: dict[int, int]) -> list[Sample]:
    return [Sample(Path(f"/d/c{label}/{i}.png"), label) for label, n in counts.items() for i in range(n)]


def test_subsets_are_nested_stratified_and_keep_every_class():
    train = _samples({0: 100, 1: 30, 2: 7})
    subsets = nested_fractions(train, [0.05, 0.1, 0.5, 1.0], seed=3, min_per_class=1)
    sizes = [set(subsets[f]) for f in (0.05, 0.1, 0.5, 1.0)]
    for small, large in zip(sizes, sizes[1:]):
        assert small < large  # strictly nested
    assert sizes[-1] == set(train)
    assert Counter(s.label for s in subsets[0.1]) == {0: 10, 1: 3, 2: 1}
    assert Counter(s.label for s in subsets[0.05]) == {0: 5, 1: 2, 2: 1}  # at least one image per class


def test_min_per_class_is_honoured_but_never_exceeds_the_class():
    assert class_count(7, 0.05, 2) == 2
    assert class_count(1, 0.05, 2) == 1
    assert class_count(40, 0.5, 2) == 20
    subsets = nested_fractions(_samples({0: 50, 1: 4}), [0.1], seed=0, min_per_class=2)
    assert Counter(s.label for s in subsets[0.1]) == {0: 5, 1: 2}


def test_same_seed_same_subsets_other_seed_other_subsets():
    train = _samples({0: 60, 1: 60})
    a = nested_fractions(train, [0.2], seed=1)[0.2]
    assert a == nested_fractions(list(reversed(train)), [0.2], seed=1)[0.2]  # input order does not matter
    assert set(a) != set(nested_fractions(train, [0.2], seed=2)[0.2])


@pytest.mark.parametrize("bad", [[0.0], [1.5], [], [-0.1, 0.5]])
def test_bad_fractions_are_refused(bad):
    with pytest.raises(TlearnError, match="--fractions"):
        check_fractions(bad)


def test_manifest_round_trips_through_load_splits(tiny_tree, tmp_path):
    splits = load_splits(tiny_tree, 0.2, seed=0)
    subset = nested_fractions(splits.train, [0.25], seed=0, min_per_class=2)[0.25]
    manifest = tmp_path / "sub" / "m.csv"
    manifest.parent.mkdir()
    manifest.write_text(manifest_text(subset, splits))
    again = load_splits(manifest)
    assert again.classes == splits.classes
    assert {(str(s.path), s.label) for s in again.train} == {(str(s.path.resolve()), s.label) for s in subset}
    assert {str(s.path) for s in again.val} == {str(s.path.resolve()) for s in splits.val}
    assert again.val_source == "val split" and not again.test
    rows = list(csv.DictReader(io.StringIO(manifest_text(subset, splits))))
    assert Counter(r["split"] for r in rows) == {"train": len(subset), "val": len(splits.val)}


def test_manifest_keeps_test_split():
    splits = DataSplits("/d", ["a", "b"], _samples({0: 4, 1: 4}), _samples({0: 1, 1: 1}),
                        [Sample(Path("/t/a.png"), 0)], "val split")
    rows = list(csv.DictReader(io.StringIO(manifest_text(splits.train[:2], splits))))
    assert [r["split"] for r in rows].count("test") == 1
    assert rows[-1]["label"] == "a"
