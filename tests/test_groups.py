"""Groups (patients): the group regex, group-aware held-out and study splits, groups shared by given splits."""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tlearn.cli import main
from tlearn.config import FitConfig
from tlearn.data.groups import CHEST_XRAY_GROUP_BY, compile_group_regex, group_of, shared_groups
from tlearn.data.layout import load_splits, read_labelled_folder
from tlearn.errors import DataError, TlearnError
from tlearn.study.fractions import manifest_text, nested_fractions


def write_patients(root: Path, patients: dict[str, list[int]], size: int = 16, seed: int = 0,
                   contrast: float = 8.0) -> Path:
    """root/<class>/p<id>_<k>.png: class -> images per patient (patient ids unique across classes)."""
    rng = np.random.default_rng(seed)
    pid = 0
    for c, (name, per_patient) in enumerate(patients.items()):
        (root / name).mkdir(parents=True, exist_ok=True)
        for n in per_patient:
            for k in range(n):
                arr = np.clip(100 + contrast * c + rng.normal(0, 40, (size, size, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(arr).save(root / name / f"p{pid}_{k}.png")
            pid += 1
    return root


@pytest.mark.parametrize("name, group", [
    ("person1287_virus_2210.jpeg", "person1287"), ("person1287_bacteria_3301.jpeg", "person1287"),
    ("IM-0115-0001.jpeg", "IM-0115"), ("IM-0499-0001-0002.jpeg", "IM-0499"),
    ("NORMAL2-IM-1427-0001.jpeg", "NORMAL2-IM-1427"), ("scan.png", None)])
def test_documented_regex_finds_the_chest_xray_patient(name, group):
    assert group_of(compile_group_regex(CHEST_XRAY_GROUP_BY), Path("/d/train/NORMAL") / name, Path("/d")) == group


def test_whole_match_without_a_capture_group_and_relative_paths_with_a_slash():
    root = Path("/data")
    assert group_of(compile_group_regex(r"p\d+"), root / "a/p12_3.png", root) == "p12"
    # a regex with '/' is searched in the path relative to the data folder: here the patient folder
    assert group_of(compile_group_regex(r"([^/]+)/[^/]+$"), root / "train/a/pat7/img1.png", root) == "pat7"
    with pytest.raises(DataError, match="not a valid regular expression"):
        compile_group_regex("(unclosed")
    with pytest.raises(TlearnError, match="--group-by"):
        FitConfig(data="d", out="o", group_by="(unclosed")


def test_regex_that_matches_nothing_is_an_error_naming_a_file(tmp_path):
    data = write_patients(tmp_path / "d", {"a": [1] * 4, "b": [1] * 4})
    with pytest.raises(DataError, match=r"matches none of the 8 image names.*p0_0\.png"):
        load_splits(data, group_by=r"^patient(\d+)")


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_held_out_val_never_splits_a_patient_and_stays_stratified(tmp_path, seed):
    rng = np.random.default_rng(seed)
    data = write_patients(tmp_path / "d", {"a": list(rng.integers(1, 6, 60)), "b": list(rng.integers(1, 4, 30))},
                          size=4)
    s = load_splits(data, val_fraction=0.2, seed=seed, group_by=r"^(p\d+)_")
    assert not {x.group for x in s.train} & {x.group for x in s.val}
    assert all(x.group for x in s.train + s.val)
    for label in (0, 1):
        n_all = sum(1 for x in s.train + s.val if x.label == label)
        n_val = sum(1 for x in s.val if x.label == label)
        assert 0.15 <= n_val / n_all <= 0.25, (label, n_val, n_all)
    assert "whole groups" in s.val_source
    again = load_splits(data, val_fraction=0.2, seed=seed, group_by=r"^(p\d+)_")
    assert [x.path for x in again.val] == [x.path for x in s.val]


def test_ungrouped_data_keeps_its_old_split(tiny_tree):
    s = load_splits(tiny_tree, val_fraction=0.25, seed=1)
    assert s.val_source == "25% of train held out (stratified, seed 1)" and not s.has_groups


def test_manifest_group_column_wins_and_the_regex_fills_the_rest(tmp_path):
    data = write_patients(tmp_path / "imgs", {"a": [2, 2, 2], "b": [2, 2, 2]}, size=4)
    rows = ["path,label,split,group"]
    for path in sorted(data.rglob("*.png")):
        rel = path.relative_to(tmp_path).as_posix()
        group = "P-SHARED" if path.name.startswith(("p0_", "p3_")) else ""  # p0 (a) and p3 (b): one patient
        split = "val" if path.name.startswith(("p2_", "p3_", "p5_")) else "train"
        rows.append(f"{rel},{path.parent.name},{split},{group}")
    (tmp_path / "m.csv").write_text("\n".join(rows) + "\n")
    s = load_splits(tmp_path / "m.csv", group_by=r"^(p\d+)_")
    assert {x.group for x in s.train} == {"P-SHARED", "p1", "p4"}
    assert {x.group for x in s.val} == {"P-SHARED", "p2", "p5"}
    shared = shared_groups({"train": s.train, "val": s.val})
    assert [item["group"] for item in shared] == ["P-SHARED"]
    assert set(shared[0]["splits"]) == {"train", "val"}
    samples, _ = read_labelled_folder(tmp_path / "m.csv", ["a", "b"])
    assert sum(x.group == "P-SHARED" for x in samples) == 4 and sum(x.group is None for x in samples) == 8


def test_study_subsets_take_whole_patients_nested_and_stratified(tmp_path):
    rng = np.random.default_rng(0)
    data = write_patients(tmp_path / "d", {"a": list(rng.integers(1, 5, 50)), "b": list(rng.integers(1, 5, 25))},
                          size=4)
    s = load_splits(data, seed=0, group_by=r"^(p\d+)_")
    subsets = nested_fractions(s.train, [0.1, 0.5, 1.0], seed=3, min_per_class=2)
    sets = [set(subsets[f]) for f in (0.1, 0.5, 1.0)]
    assert sets[0] < sets[1] < sets[2] and sets[2] == set(s.train)
    patients = {x.group: {y for y in s.train if y.group == x.group} for x in s.train}
    for chosen in sets:
        assert all(patients[x.group] <= chosen for x in chosen)  # whole patients only
    counts = Counter(x.label for x in subsets[0.5])
    totals = Counter(x.label for x in s.train)
    for label in (0, 1):
        assert 0.4 <= counts[label] / totals[label] <= 0.65
    text = manifest_text(subsets[0.1], s)
    assert text.splitlines()[0] == "path,label,split,group" and ",p" in text.splitlines()[1]


def _shared_patient_data(root: Path) -> Path:
    write_patients(root / "train", {"a": [2] * 6, "b": [2] * 6}, seed=1)
    write_patients(root / "val", {"a": [2] * 3, "b": [2] * 3}, seed=2)  # p0..p5 again: shared with train
    return root


def test_strict_refuses_a_patient_in_two_splits_naming_it_and_its_files(tmp_path, capsys):
    data = _shared_patient_data(tmp_path / "d")
    code = main(["fit", str(data), "--out", str(tmp_path / "run"), "--group-by", r"^(p\d+)_", "--strict",
                 "--backbone", "compact_cnn", "--weights", "none"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("tlearn: error: --strict: 6 group(s)")
    assert "p0:" in err and str(data / "train" / "a" / "p0_0.png") in err
    assert not (tmp_path / "run").exists()  # refused before anything was written


def test_fit_records_shared_groups_and_cluster_intervals(tmp_path):
    from tlearn.fitting import fit

    data = _shared_patient_data(tmp_path / "d")
    run = fit(data, tmp_path / "run", strategy="scratch", epochs=1, backbone="compact_cnn", weights="none",
              image_size=16, group_by=r"^(p\d+)_", progress=False)  # scratch, 1 epoch: the fastest full run
    metrics = json.loads((run.path / "metrics.json").read_text())
    groups = metrics["groups"]
    assert groups["shared_count"] == 6 and groups["counts"] == {"train": 12, "val": 6}
    assert groups["shared"][0]["group"] == "p0" and len(groups["shared"][0]["splits"]["val"]) == 2
    val = metrics["val"]
    assert val["ci_unit"] == "group" and val["ci_units"] == 6
    lo, hi = val["ci95"]["accuracy"]
    assert lo <= val["accuracy"] <= hi
    assert run.config["data"]["groups"] == {"train": 12, "val": 6, "test": 0}
    assert "group" in (run.path / "predictions" / "val.csv").read_text().splitlines()[0].split(",")
    evaluated = run.evaluate(data / "val", progress=False)  # the run's --group-by applies at evaluation too
    assert evaluated["ci_unit"] == "group" and evaluated["ci95"] == val["ci95"]
    assert "bootstrap 95% interval" in (run.path / "report.html").read_text()
