"""Leakage across splits: byte-identical copies, one file listed in two splits, and resized / re-encoded
near-copies are reported before training (a warning block) and in metrics.json; distinct images are not."""
from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import shared_dataset, smooth_photo, write_class_tree
from tlearn.data.layout import load_splits
from tlearn.data.leakage import NEAR_BITS, NEAR_CORRELATION, check_leakage, phash, thumbnail


def _tree(root, split: str, images: dict[str, list[tuple[str, Image.Image]]]) -> None:
    for label, items in images.items():
        folder = root / split / label
        folder.mkdir(parents=True, exist_ok=True)
        for name, img in items:
            img.save(folder / name)


@pytest.fixture
def leaky(tmp_path):
    """train/val/test of distinct pictures, then: one train file copied byte for byte into test, and one
    train picture resized to 60% and re-encoded as JPEG (quality 70) into val."""
    root = tmp_path / "leaky"
    seeds = iter(range(1000))
    for split, n in (("train", 8), ("val", 4), ("test", 4)):
        _tree(root, split, {c: [(f"{c}{i}.png", smooth_photo(next(seeds))) for i in range(n)] for c in ("a", "b")})
    shutil.copyfile(root / "train" / "a" / "a3.png", root / "test" / "b" / "copy.png")
    near = Image.open(root / "train" / "b" / "b5.png").convert("RGB")
    near.resize((58, 58), Image.Resampling.BILINEAR).save(root / "val" / "b" / "smaller.jpg", quality=70)
    return root


def test_exact_and_near_copies_across_splits_are_found(leaky, tmp_path):
    report = check_leakage(load_splits(leaky), tmp_path / "cache")
    assert report.exact_count == 1 and report.near_count == 1
    (exact,) = report.exact
    assert exact["splits"] == ["train", "test"] and exact["labels"] == ["a", "b"] and not exact["same_file"]
    assert exact["paths"][0].endswith("train/a/a3.png") and exact["paths"][1].endswith("test/b/copy.png")
    (near,) = report.near
    assert near["splits"] == ["train", "val"] and near["paths"][1].endswith("val/b/smaller.jpg")
    assert near["paths"][0].endswith("train/b/b5.png") and near["hash_bits"] <= NEAR_BITS
    assert near["correlation"] >= NEAR_CORRELATION
    text = report.warning_text()
    assert "LEAKAGE ACROSS SPLITS" in text and "copy.png" in text and "smaller.jpg" in text
    # hashes are remembered by content: a second check decodes nothing and finds the same
    again = check_leakage(load_splits(leaky), tmp_path / "cache")
    assert again.to_dict() | {"seconds": 0} == report.to_dict() | {"seconds": 0}


def test_distinct_images_are_not_reported(tmp_path):
    root = tmp_path / "clean"
    seeds = iter(range(1000))
    for split, n in (("train", 20), ("val", 10), ("test", 10)):
        _tree(root, split, {c: [(f"{c}{i}.png", smooth_photo(next(seeds))) for i in range(n)] for c in ("a", "b")})
    report = check_leakage(load_splits(root), None)
    assert not report and report.exact == [] and report.near == [] and report.checked["train"] == 40


def test_one_manifest_row_file_listed_in_two_splits(tmp_path):
    data = write_class_tree(tmp_path / "imgs", {"x": 3, "y": 3}, size=24)
    manifest = tmp_path / "m.csv"
    rows = ["path,label,split"] + [f"imgs/{c}/{c}_{i}.png,{c},train" for c in "xy" for i in range(3)]
    rows += ["imgs/x/x_0.png,x,test", "imgs/y/y_2.png,y,test"]  # train files listed again as test images
    manifest.write_text("\n".join(rows) + "\n")
    report = check_leakage(load_splits(manifest, seed=0), None)
    same = [g for g in report.exact if g["same_file"]]
    # train is split again into train/val, so each file's earlier listing is in train or val
    assert sorted(g["paths"][0] for g in same) == [str(data / "x" / "x_0.png"), str(data / "y" / "y_2.png")]
    assert all(len(set(g["paths"])) == 1 and g["splits"][-1] == "test" for g in same)


def test_a_flat_image_matches_nothing_by_hash():
    flat = thumbnail(Image.new("RGB", (50, 50), (120, 30, 200)))
    assert phash(np.stack([flat]))[0] == 0


def test_fit_warns_before_training_and_writes_the_pairs_to_metrics(leaky, tmp_path, caplog):
    from tlearn import fit

    with caplog.at_level(logging.INFO, logger="tlearn"):
        run = fit(leaky, tmp_path / "run", strategy="linear-probe", backbone="compact_cnn", weights="none",
                  image_size=24, progress=False, num_workers=0)
    messages = [r.getMessage() for r in caplog.records]
    warned = next(i for i, m in enumerate(messages) if "LEAKAGE ACROSS SPLITS" in m)
    first_backbone = next(i for i, m in enumerate(messages) if m.startswith("backbone "))
    assert warned < first_backbone  # reported before any model is built or trained
    leakage = json.loads((run.path / "metrics.json").read_text())["leakage"]
    assert leakage["exact_count"] == 1 and leakage["near_count"] == 1
    assert leakage["exact"][0]["splits"] == ["train", "test"] and leakage["near"][0]["splits"] == ["train", "val"]


def test_flower_photos_known_copies_are_found_in_seconds(tmp_path):
    """The shared flowers set: a retouched crop of one sunflower photo in train is in val (a near-copy), and one
    photo is byte-identical in train/roses and train/tulips (not across splits: a label conflict)."""
    root = shared_dataset("flower_photos")
    report = check_leakage(load_splits(root), tmp_path / "cache")
    assert report.exact_count == 0 and report.seconds < 60
    near = {tuple(Path(p).relative_to(root).as_posix() for p in pair["paths"]) for pair in report.near}
    assert ("train/sunflowers/2823659190_afdabee45c.jpg", "val/sunflowers/2979133707_84aab35b5d.jpg") in near
    (conflict,) = report.label_conflicts
    assert conflict["labels"] == ["roses", "tulips"] and conflict["splits"] == ["train", "train"]


def _counting_checks(monkeypatch) -> list[int]:
    """Counts the full checks (not served from the cache) from now on."""
    import tlearn.data.leakage as leakage

    calls: list[int] = []
    real = leakage._check

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(leakage, "_check", counted)
    return calls


def test_an_unchanged_folder_is_not_checked_again(leaky, tmp_path, monkeypatch):
    first = check_leakage(load_splits(leaky), tmp_path / "cache")
    calls = _counting_checks(monkeypatch)
    again = check_leakage(load_splits(leaky), tmp_path / "cache")
    assert calls == [] and again.to_dict() | {"seconds": 0} == first.to_dict() | {"seconds": 0}
    assert check_leakage(load_splits(leaky), tmp_path / "cache", near=False).near_count == 0 and calls == [1]


def test_an_edited_file_or_a_moved_label_is_checked_again(leaky, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    assert check_leakage(load_splits(leaky), cache).exact_count == 1
    calls = _counting_checks(monkeypatch)
    # a val image's content replaced by a train image's: one more exact copy
    shutil.copyfile(leaky / "train" / "a" / "a1.png", leaky / "val" / "a" / "a0.png")
    assert check_leakage(load_splits(leaky), cache).exact_count == 2 and calls == [1]
    # the train copy of test/b/copy.png relabelled: its label conflict follows the new label
    shutil.move(leaky / "train" / "a" / "a3.png", leaky / "train" / "b" / "a3.png")
    report = check_leakage(load_splits(leaky), cache)
    assert calls == [1, 1] and not report.label_conflicts


def test_a_corrupted_cached_check_is_recomputed_with_a_warning(leaky, tmp_path, monkeypatch, caplog):
    cache = tmp_path / "cache"
    first = check_leakage(load_splits(leaky), cache)
    (entry,) = (cache / "leakage").glob("*.npz")
    entry.write_bytes(b"\x00garbage")
    calls = _counting_checks(monkeypatch)
    with caplog.at_level(logging.WARNING, logger="tlearn"):
        again = check_leakage(load_splits(leaky), cache)
    assert calls == [1] and again.to_dict() | {"seconds": 0} == first.to_dict() | {"seconds": 0}
    assert any("leakage cache entry" in r.getMessage() for r in caplog.records)
    assert check_leakage(load_splits(leaky), cache).exact_count == 1 and calls == [1]  # rewritten, a hit again
