"""End to end through the CLI on real images: fit, evaluate, predict, backbones, odd files, run as backbone."""
from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image


def tlearn(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "tlearn", *args], capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"tlearn {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc


@pytest.fixture(scope="module")
def hymenoptera_run(hymenoptera, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "hym"
    tlearn("fit", str(hymenoptera), "--out", str(out), "--no-progress")
    return out


def test_fit_writes_the_run_directory_contract(hymenoptera_run):
    for name in ("config.yaml", "classes.json", "metrics.json", "history.csv", "model.safetensors"):
        assert (hymenoptera_run / name).is_file(), name
    metrics = json.loads((hymenoptera_run / "metrics.json").read_text())
    for key in ("accuracy", "balanced_accuracy", "macro_f1", "loss", "n"):
        assert key in metrics["val"]
    assert metrics["val"]["n"] == 153 and metrics["val"]["accuracy"] >= 0.93
    assert json.loads((hymenoptera_run / "classes.json").read_text()) == ["ants", "bees"]
    config = yaml.safe_load((hymenoptera_run / "config.yaml").read_text())
    assert len(config["backbone"]["weights_sha256"]) == 64 and config["fit"]["seed"] == 0
    assert config["strategy"]["name"] == "linear-probe" and config["strategy"]["C"] > 0
    # hymenoptera's imageNotFound.gif is a valid image (label noise), not an unreadable file
    assert not any("imageNotFound" in s["path"] for s in metrics["skipped"])


def test_evaluate_reproduces_the_recorded_accuracy(hymenoptera_run, hymenoptera):
    out = tlearn("evaluate", str(hymenoptera_run), str(hymenoptera / "val"), "--json").stdout
    recorded = json.loads((hymenoptera_run / "metrics.json").read_text())["val"]
    got = json.loads(out)
    assert got["n"] == recorded["n"]
    assert got["accuracy"] == pytest.approx(recorded["accuracy"], abs=1e-9)


def test_predict_labels_a_bee_as_bees(hymenoptera_run, hymenoptera):
    bee = sorted((hymenoptera / "val" / "bees").iterdir())[0]
    rows = [json.loads(line) for line in tlearn("predict", str(hymenoptera_run), str(bee), "--json").stdout.splitlines()]
    assert rows[0]["predicted"] == "bees" and rows[0]["probability"] > 0.5
    out = tlearn("predict", str(hymenoptera_run), str(hymenoptera / "val" / "ants")).stdout
    plain = list(csv.DictReader(io.StringIO(out)))
    assert len(plain) == 70 and sum(row["predicted"] == "ants" for row in plain) >= 60


def test_second_fit_reuses_cached_features(hymenoptera_run, hymenoptera, tmp_path):
    tlearn("fit", str(hymenoptera), "--out", str(tmp_path / "again"), "--no-progress")
    config = yaml.safe_load((tmp_path / "again" / "config.yaml").read_text())
    assert config["strategy"]["train_features_from_cache"] == 245
    first = json.loads((hymenoptera_run / "metrics.json").read_text())
    second = json.loads((tmp_path / "again" / "metrics.json").read_text())
    assert second["val"]["accuracy"] == first["val"]["accuracy"]
    assert second["train_seconds"] < first["train_seconds"]


def test_backbones_lists_offline_weights():
    rows = json.loads(tlearn("backbones", "--json").stdout)
    by_name = {r["name"]: r for r in rows}
    assert by_name["efficientnet_lite0"]["weights_offline"] is True
    assert by_name["inception_v3"]["input_size"] == 299


def _odd_copy(hymenoptera: Path, root: Path) -> Path:
    """A small copy of hymenoptera with broken files and valid images in odd forms."""
    for split, n in (("train", 20), ("val", 10)):
        for cls in ("ants", "bees"):
            dst = root / split / cls
            dst.mkdir(parents=True)
            for src in sorted((hymenoptera / split / cls).glob("*.jpg"))[:n]:
                shutil.copy(src, dst / src.name)
    ants, bees = root / "train" / "ants", root / "train" / "bees"
    photo = Image.open(sorted(ants.glob("*.jpg"))[0]).convert("RGB")
    # broken: truncated JPEG, a text file named .jpg, an empty file
    buf = io.BytesIO()
    photo.save(buf, "JPEG")
    (ants / "truncated.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    (ants / "x.jpg").write_text("not an image")
    (bees / "empty.jpg").write_bytes(b"")
    # valid in odd forms
    photo.convert("P").save(ants / "palette.gif")
    photo.convert("CMYK").save(ants / "cmyk.jpg")
    Image.fromarray((np.asarray(photo.convert("L"), np.uint16) * 64)).save(bees / "scan16.png")
    rgba = photo.convert("RGBA")
    rgba.putalpha(200)
    rgba.save(bees / "alpha.png")
    photo.save(bees / "UPPER.JPEG")
    exif = Image.Exif()
    exif[0x0112] = 6
    photo.save(ants / "rotated.jpg", exif=exif.tobytes())
    return root


def test_odd_and_broken_files(hymenoptera, tmp_path):
    data = _odd_copy(hymenoptera, tmp_path / "odd")
    proc = tlearn("fit", str(data), "--out", str(tmp_path / "run"), "--no-progress")
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    skipped = {Path(s["path"]).name: s["reason"] for s in metrics["skipped"]}
    assert set(skipped) == {"truncated.jpg", "x.jpg", "empty.jpg"}, skipped
    assert "empty" in skipped["empty.jpg"] and "not an image" in skipped["x.jpg"]
    assert "skipped 3" in proc.stderr
    rows = (tmp_path / "run" / "predictions" / "val.csv").read_text().splitlines()
    assert len(rows) == 1 + 20
    assert metrics["val"]["accuracy"] >= 0.8
    config = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert config["strategy"]["train_features_from_cache"] >= 0  # ran; 40 + 6 odd - 3 broken images used
    assert metrics["train"]["n"] == 40 + 6


def test_run_directory_as_backbone(hymenoptera_run, tiny_tree, tmp_path):
    out = tmp_path / "from_run"
    tlearn("fit", str(tiny_tree), "--out", str(out), "--backbone", str(hymenoptera_run), "--no-progress")
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["backbone"]["weights"].startswith("run:")
    assert config["backbone"]["architecture"] == "efficientnet_lite0"
    assert json.loads((out / "metrics.json").read_text())["val"]["accuracy"] >= 0.8


def test_bad_input_gets_a_clear_error_and_exit_code(tmp_path, tiny_tree):
    proc = tlearn("fit", str(tmp_path / "missing"), "--out", str(tmp_path / "r"), check=False)
    assert proc.returncode == 2 and "does not exist" in proc.stderr and "Traceback" not in proc.stderr
    proc = tlearn("fit", str(tiny_tree), "--out", str(tmp_path / "r"), "--backbone", "nope", check=False)
    assert proc.returncode == 2 and "unknown backbone" in proc.stderr
    assert not (tmp_path / "r").exists()  # nothing half-written
