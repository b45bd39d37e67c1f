"""End to end: a teacher run teaches a student; the student run directory works with evaluate/predict."""
from __future__ import annotations

import csv
import json
import shutil

import pytest
import yaml

from conftest import write_class_tree
from tlearn.cli import main
from tlearn.data.layout import load_splits
from tlearn.distill import ALONE_DIR, distill, unlabeled_samples
from tlearn.errors import TlearnError
from tlearn.fitting import fit
from tlearn.hashing import sha256_file
from tlearn.runs.run import Run

BLOCK_KEYS = {"split", "teacher_accuracy", "student_accuracy", "student_alone_accuracy", "teacher_params",
              "student_params", "teacher_mb", "student_mb", "teacher_ms_batch1", "student_ms_batch1",
              "teacher_ms_batch32", "student_ms_batch32"}


@pytest.fixture(scope="module")
def colours(tmp_path_factory):
    return write_class_tree(tmp_path_factory.mktemp("colours") / "data", {"red": 14, "green": 14, "blue": 14},
                            size=24)


@pytest.fixture(scope="module")
def teacher(colours, tmp_path_factory):
    out = tmp_path_factory.mktemp("teacher") / "run"
    return fit(colours, out, strategy="scratch", backbone="compact_cnn", weights="none", image_size=24, epochs=3,
               augment="none", num_workers=0, progress=False)


def test_distilled_student_is_a_normal_run_with_a_distillation_block(colours, teacher, tmp_path):
    extra = write_class_tree(tmp_path / "extra", {"a": 3, "b": 3}, size=24, seed=7)  # unlabeled images
    out = tmp_path / "student"
    run = distill(colours, teacher.path, out, student="compact_cnn", student_size=16, epochs=2, student_alone=True,
                  crops="teacher", unlabeled=str(extra), feature_weight=0.5, latency_repeats=2, num_workers=0,
                  progress=False)
    for name in ("config.yaml", "classes.json", "metrics.json", "history.csv", "model.safetensors"):
        assert (out / name).is_file(), name
    m = run.metrics
    block = m["distillation"]
    assert BLOCK_KEYS <= set(block)
    assert block["split"] == "val" and block["unlabeled_images"] == 6
    assert block["student_accuracy"] == m["val"]["accuracy"]
    n_val = m["val"]["n"]
    # The teacher's accuracy is measured on the same split as the teacher run's own headline metric.
    assert abs(block["teacher_accuracy"] - teacher.metrics["val"]["accuracy"]) <= 1.0 / n_val + 1e-9
    assert block["student_params"] < 1_000_000 and block["student_input_size"] == 16
    assert block["teacher_input_size"] == 24 and block["student_ms_batch1"] > 0
    assert block["feature_weight"] == 0.5  # the hint's projection trained, but is not part of the saved student
    from safetensors import safe_open

    with safe_open(str(out / "model.safetensors"), "pt") as f:
        assert not [k for k in f.keys() if k.startswith("hint.")]

    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["strategy"]["name"] == "distill"
    assert config["strategy"]["crop_px"] == 24  # augmented crops cut at the teacher's size, not the student's
    assert config["teacher"]["model_sha256"] == sha256_file(teacher.path / "model.safetensors")
    assert config["backbone"]["data_config"]["input_size"] == 16
    with open(out / "history.csv") as f:
        assert len(list(csv.DictReader(f))) == 2

    # evaluate and predict work on the student like on any run, and agree with metrics.json.
    reloaded = Run(out)
    splits = load_splits(colours)
    probs = reloaded.predict([s.path for s in splits.val])[0]
    accuracy = sum(p.label == splits.classes[s.label] for p, s in zip(probs, splits.val)) / len(splits.val)
    assert accuracy == pytest.approx(m["val"]["accuracy"])

    alone = Run(out / ALONE_DIR)
    assert alone.metrics["val"]["accuracy"] == block["student_alone_accuracy"]
    assert json.loads((out / ALONE_DIR / "classes.json").read_text()) == splits.classes


def test_unlabeled_images_that_are_evaluation_images_are_refused(colours, tmp_path):
    splits = load_splits(colours)
    folder = tmp_path / "unlabeled"
    folder.mkdir()
    shutil.copy(splits.val[0].path, folder / "copy.png")
    with pytest.raises(TlearnError, match="leak"):
        unlabeled_samples(folder, splits)


def test_cli_errors_name_the_setting(colours, teacher, tmp_path, capsys):
    assert main(["distill", str(colours), "--teacher", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "--teacher" in capsys.readouterr().err
    assert main(["distill", str(colours), "--teacher", str(teacher.path), "--out", str(tmp_path / "o"),
                 "--temperature", "0"]) == 2
    assert "--temperature" in capsys.readouterr().err
    assert main(["distill", str(colours), "--teacher", str(teacher.path), "--out", str(tmp_path / "o"),
                 "--feature-weight", "-1"]) == 2
    assert "--feature-weight" in capsys.readouterr().err


def test_flip_reuses_the_cached_teacher_outputs_and_crops_run_the_teacher_live(colours, teacher, tmp_path):
    records = {}
    for augment in ("flip", "crop"):
        run = distill(colours, teacher.path, tmp_path / augment, student_size=16, epochs=1, augment=augment,
                      student_alone=False,
                      latency_repeats=1, num_workers=0, progress=False)
        records[augment] = run.config["strategy"]["teacher_outputs"]
    assert records == {"flip": "cached, un-augmented (reused for mirrors)", "crop": "live, on each batch"}
