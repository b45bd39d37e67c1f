"""The DATA layout contract: split folders, flat trees, CSV manifests, and clear errors."""
from __future__ import annotations

import pytest

from tlearn.data.layout import load_splits, read_labelled_folder
from tlearn.errors import DataError

from conftest import write_class_tree


def test_flat_tree_is_split_stratified_and_repeatably(tiny_tree):
    a = load_splits(tiny_tree, val_fraction=0.25, seed=1)
    b = load_splits(tiny_tree, val_fraction=0.25, seed=1)
    c = load_splits(tiny_tree, val_fraction=0.25, seed=2)
    assert a.classes == ["blue", "green", "red"]
    assert len(a.val) == 9 and len(a.train) == 27 and not a.test
    assert sorted(s.label for s in a.val) == [0, 0, 0, 1, 1, 1, 2, 2, 2]  # stratified
    assert not {s.path for s in a.train} & {s.path for s in a.val}
    assert [s.path for s in a.val] == [s.path for s in b.val]
    assert [s.path for s in a.val] != [s.path for s in c.val]


def test_split_folders_are_used_as_given(tmp_path):
    for split, n in (("train", 6), ("val", 3), ("test", 2)):
        write_class_tree(tmp_path / "d" / split, {"cat": n, "dog": n})
    s = load_splits(tmp_path / "d")
    assert s.counts() == {"train": 12, "val": 6, "test": 4}
    assert s.val_source == "val split"


def test_csv_manifest_with_and_without_split(tmp_path):
    write_class_tree(tmp_path / "imgs", {"a": 6, "b": 6})
    rows = ["path,label,split"]
    for cls in ("a", "b"):
        for i in range(6):
            rows.append(f"imgs/{cls}/{cls}_{i}.png,{cls},{'val' if i < 2 else 'train'}")
    (tmp_path / "m.csv").write_text("\n".join(rows) + "\n")
    s = load_splits(tmp_path / "m.csv")
    assert s.counts() == {"train": 8, "val": 4, "test": 0}
    (tmp_path / "m2.csv").write_text("\n".join(r.rsplit(",", 1)[0] for r in rows) + "\n")
    s2 = load_splits(tmp_path / "m2.csv", val_fraction=0.25)
    assert len(s2.train) + len(s2.val) == 12 and s2.val_source.startswith("25%")


def test_non_images_are_listed_not_fatal(tiny_tree):
    (tiny_tree / "red" / "notes.txt").write_text("hello")
    s = load_splits(tiny_tree)
    assert any(k.path.endswith("notes.txt") and "not an image" in k.reason for k in s.skipped)


def test_single_class_is_an_error(tmp_path):
    write_class_tree(tmp_path / "one", {"only": 5})
    with pytest.raises(DataError, match="single class"):
        load_splits(tmp_path / "one")


def test_empty_class_folder_is_an_error(tiny_tree):
    (tiny_tree / "purple").mkdir()
    with pytest.raises(DataError, match="purple.*no images"):
        load_splits(tiny_tree)


def test_class_sets_must_match_between_splits(tmp_path):
    write_class_tree(tmp_path / "d" / "train", {"cat": 4, "dog": 4})
    write_class_tree(tmp_path / "d" / "val", {"cat": 2, "cow": 2})
    with pytest.raises(DataError, match="missing from val: \\['dog'\\].*not in train: \\['cow'\\]"):
        load_splits(tmp_path / "d")


def test_missing_path_and_unknown_classes(tmp_path, tiny_tree):
    with pytest.raises(DataError, match="does not exist"):
        load_splits(tmp_path / "nope")
    with pytest.raises(DataError, match="classes the model does not know"):
        read_labelled_folder(tiny_tree, ["red", "green"])
