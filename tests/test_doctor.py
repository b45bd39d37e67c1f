"""tlearn doctor on a tiny synthetic set with planted faults: copies across and within splits, a wrong label,
an unreadable file and an odd shape are found; --fail-on-leakage and --json; doctor then fit extracts nothing twice."""
from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import write_class_tree
from tlearn.cli import main
from tlearn.doctor import diagnose, write_doctor
from tlearn.errors import TlearnError

FAST = {"backbone": "compact_cnn", "weights": "none", "image_size": 32, "progress": False}
FAST_ARGS = ["--backbone", "compact_cnn", "--weights", "none", "--image-size", "32", "--no-progress"]
CLASSES = {"red": 12, "green": 12, "blue": 12}


def planted_set(root: Path) -> Path:
    write_class_tree(root / "train", CLASSES, size=40, seed=0)
    write_class_tree(root / "val", {k: 5 for k in CLASSES}, size=40, seed=1)
    write_class_tree(root / "spare", {"red": 0, "green": 0, "blue": 1}, size=40, seed=2)  # the colours go by position
    shutil.copy(root / "train/red/red_0.png", root / "val/red/exact_copy.png")  # exact, across splits
    Image.open(root / "train/green/green_1.png").resize((32, 32)).save(root / "val/green/near_copy.jpg", quality=75)
    shutil.copy(root / "train/blue/blue_2.png", root / "train/blue/blue_again.png")  # exact, within train
    shutil.move(root / "spare/blue/blue_0.png", root / "train/red/really_blue.png")  # a wrong label
    shutil.rmtree(root / "spare")
    (root / "train/green/broken.png").write_bytes(b"not an image at all")
    strip = np.full((40, 160, 3), (80, 133, 191), dtype=np.uint8)  # a green-ish strip: aspect ratio 4
    Image.fromarray(strip).save(root / "train/green/strip.png")
    return root


@pytest.fixture(scope="module")
def planted(tmp_path_factory) -> Path:
    return planted_set(tmp_path_factory.mktemp("doctor") / "data")


@pytest.fixture(scope="module")
def report(planted, tmp_path_factory):
    return diagnose(planted, cache_dir=str(tmp_path_factory.mktemp("cache")), **FAST)


def _group_with(report, *names):
    return [g for g in report.duplicates if {Path(p).name for p in g["paths"]} >= set(names)]


def test_planted_copies_found_across_and_within_splits_and_nothing_else(report):
    exact = _group_with(report, "red_0.png", "exact_copy.png")
    near = _group_with(report, "green_1.png", "near_copy.jpg")
    within = _group_with(report, "blue_2.png", "blue_again.png")
    assert len(exact) == 1 and exact[0]["kind"] == "exact" and exact[0]["cross_split"]
    assert len(near) == 1 and near[0]["kind"] == "near" and near[0]["cross_split"]
    assert len(within) == 1 and within[0]["kind"] == "exact" and not within[0]["cross_split"]
    assert len(report.duplicates) == 3, report.duplicates  # no false pairs among the distinct noisy images
    assert report.duplicates[-1] is within[0]  # cross-split groups first


def test_planted_wrong_label_ranks_first_with_its_true_class(report):
    class_issues = [t for t in report.label_issues if t["kind"] == "class"]
    top = class_issues[0]
    assert Path(top["path"]).name == "really_blue.png"
    assert (top["given"], top["suggested"], top["split"]) == ("red", "blue", "train")
    assert top["score"] == min(t["score"] for t in class_issues) < 0.1
    # only images that fit no class may rank above it: the flat strip first of all
    ahead = report.label_issues[:report.label_issues.index(top)]
    assert all(t["kind"] == "outlier" and t["suggested"] is None for t in ahead) and len(ahead) <= 2
    assert Path(report.label_issues[0]["path"]).name == "strip.png"
    assert Path(report.outliers[0]["path"]).name == "strip.png"


def test_unreadable_file_and_odd_shape_listed(report):
    assert [Path(s["path"]).name for s in report.skipped] == ["broken.png"]
    assert "not an image" in report.skipped[0]["reason"]
    odd = [o for o in report.files["outliers"] if o["kind"] == "aspect"]
    assert [Path(o["path"]).name for o in odd] == ["strip.png"]
    assert report.files["per_split"]["train"]["formats"] == {"PNG": 39}  # 36 + a copy, the wrong label and the strip
    green = next(r for r in report.classes["rows"] if r["class"] == "green")
    assert green["train"] == 13  # 12 + the strip; the broken file does not count


def test_json_schema(report, tmp_path):
    html, js = write_doctor(report, tmp_path / "out")
    doc = json.loads(js.read_text())
    assert html.read_text().count("<img") >= 8
    for issue in doc["label_issues"]:
        assert set(issue) >= {"path", "split", "given", "suggested", "score"}
        assert isinstance(issue["score"], float) and issue["split"] in ("train", "val", "test")
    scores = [t["score"] for t in doc["label_issues"]]
    assert scores == sorted(scores)  # most suspect first
    for group in doc["duplicates"]:
        assert set(group) >= {"paths", "splits", "kind", "cross_split"}
        assert group["kind"] in ("exact", "near") and len(group["paths"]) == len(group["splits"]) >= 2
        assert group["cross_split"] == (len(set(group["splits"])) > 1)
    assert doc["summary"]["cross_split_duplicate_groups"] == 2


def test_existing_file_of_the_user_is_not_overwritten(report, tmp_path):
    (tmp_path / "doctor.html").write_text("<p>my notes</p>")
    with pytest.raises(TlearnError, match="not written by tlearn doctor"):
        write_doctor(report, tmp_path)
    assert (tmp_path / "doctor.html").read_text() == "<p>my notes</p>"


def test_fail_on_leakage_exits_non_zero_on_cross_split_copies_and_writes_nothing_here(planted, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.run([sys.executable, "-m", "tlearn", "doctor", str(planted), "--json", "--fail-on-leakage",
                           *FAST_ARGS],
                          capture_output=True, text=True, cwd=tmp_path, env=env)
    assert proc.returncode == 1, proc.stderr
    assert "span two splits" in proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["summary"]["cross_split_duplicate_groups"] == 2
    assert list(tmp_path.iterdir()) == []  # without --out nothing lands in the current folder


def test_fail_on_leakage_passes_on_a_clean_set_and_out_writes_both_files(tmp_path, capsys):
    data = write_class_tree(tmp_path / "clean" / "train", CLASSES, size=40, seed=3).parent
    write_class_tree(data / "val", {k: 4 for k in CLASSES}, size=40, seed=4)
    assert main(["doctor", str(data), "--fail-on-leakage", "--out", str(tmp_path / "out"), *FAST_ARGS]) == 0
    assert "0 across splits" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["doctor.html", "doctor.json"]


def test_doctor_then_fit_extracts_nothing_twice(tmp_path):
    from tlearn.fitting import fit

    data = write_class_tree(tmp_path / "data" / "train", CLASSES, size=40, seed=5).parent
    write_class_tree(data / "val", {k: 4 for k in CLASSES}, size=40, seed=6)
    cache = tmp_path / "cache"
    first = diagnose(data, cache_dir=str(cache), **FAST)
    assert first.label_model["extracted"] == 48
    (db,) = (cache / "features").glob("*.sqlite")
    rows = sqlite3.connect(db).execute("SELECT COUNT(*) FROM features").fetchone()[0]
    run = fit(data, tmp_path / "run", strategy="linear-probe", backbone="compact_cnn", weights="none", image_size=32,
              cache_dir=str(cache), progress=False)
    assert run.config["strategy"]["train_features_from_cache"] == 36  # every train image
    assert sqlite3.connect(db).execute("SELECT COUNT(*) FROM features").fetchone()[0] == rows
    assert len(list((cache / "features").glob("*.sqlite"))) == 1  # the same cache key as fit's
    again = diagnose(data, cache_dir=str(cache), **FAST)
    assert again.label_model["extracted"] == 0 and again.label_model["from_cache"] == 48


def test_manifest_listing_one_file_in_two_splits_is_a_cross_split_group(tmp_path):
    tree = write_class_tree(tmp_path / "imgs", CLASSES, size=40, seed=7)
    rows = ["path,label,split"]
    for name in CLASSES:
        files = sorted((tree / name).glob("*.png"))
        rows += [f"imgs/{name}/{f.name},{name},{'val' if i < 3 else 'train'}" for i, f in enumerate(files)]
    rows.append("imgs/red/red_5.png,red,val")  # a train file listed again in val
    (tmp_path / "data.csv").write_text("\n".join(rows) + "\n")
    report = diagnose(tmp_path / "data.csv", cache_dir=str(tmp_path / "cache"), **FAST)
    (group,) = report.cross_split_duplicates
    assert group["kind"] == "exact" and len(set(group["paths"])) == 1 and sorted(group["splits"]) == ["train", "val"]
