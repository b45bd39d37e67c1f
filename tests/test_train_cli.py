"""tlearn fit with the fine-tuning strategies end to end: SIGKILL + --resume, torchrun DDP, imbalance options,
--image-size recorded for prediction. Tiny images at 32 px keep each run to seconds."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from conftest import write_class_tree

FAST = ["--image-size", "32", "--train-batch-size", "8", "--num-workers", "0", "--no-progress", "--seed", "1"]
# the natural-photo recipe by name: these tiny 36 px images would otherwise get the small-image recipe
NATURAL = ["--finetune-recipe", "finetune"]


def tlearn(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "tlearn", *args], capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise AssertionError(f"tlearn {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return write_class_tree(tmp_path_factory.mktemp("cli") / "tiny", {"red": 14, "green": 14, "blue": 14}, size=36)


def test_sigkill_mid_epoch_then_resume_matches_the_uninterrupted_run(tiny, tmp_path):
    args = [str(tiny), "--strategy", "finetune", "--epochs", "3", *NATURAL, *FAST]
    tlearn("fit", *args, "--out", str(tmp_path / "whole"))
    whole = json.loads((tmp_path / "whole" / "metrics.json").read_text())

    out = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "tlearn", "fit", *args, "--out", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pointer = out / "checkpoints" / "last.json"
    deadline = time.monotonic() + 900
    while not pointer.is_file() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)  # during epoch 2: only epoch 1's checkpoint is complete
    proc.wait()
    assert json.loads(pointer.read_text())["epoch"] == 1
    assert not (out / "metrics.json").exists()

    tlearn("fit", *args, "--out", str(out), "--resume")
    resumed = json.loads((out / "metrics.json").read_text())
    assert abs(resumed["val"]["accuracy"] - whole["val"]["accuracy"]) <= 0.01
    assert resumed["val"]["loss"] == pytest.approx(whole["val"]["loss"], abs=0.01)
    rows = (out / "history.csv").read_text().splitlines()
    assert len(rows) == 1 + 3 and rows[0].startswith("epoch,lr,train_loss,val_loss,val_accuracy,seconds")


def test_torchrun_two_cpu_processes_write_one_run(tiny, tmp_path):
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "tlearn",
           "fit", str(tiny), "--out", str(out), "--strategy", "finetune", "--epochs", "1", "--json", *NATURAL,
           *FAST]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count('"run":') == 1  # only rank 0 reports
    assert "Grad strides do not match bucket view strides" not in proc.stderr  # tlearn.train.distributed.wrap_ddp
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["strategy"]["world_size"] == 2
    assert json.loads((out / "metrics.json").read_text())["val"]["n"] > 0
    assert [p.name for p in tmp_path.iterdir()] == ["ddp"]


def test_imbalance_options_and_image_size_are_recorded_and_used(tmp_path):
    data = write_class_tree(tmp_path / "skewed", {"common": 30, "rare": 8}, size=36)
    out = tmp_path / "run"
    tlearn("fit", str(data), "--out", str(out), "--strategy", "gradual", "--epochs", "2", "--balanced-loss",
           "--balanced-sampler", "--augment", "medium", *FAST)
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["fit"]["class_weights"] == "auto" and config["fit"]["sampler"] == "balanced"
    assert config["strategy"]["train_options"]["sampler"] == "balanced"
    assert config["backbone"]["data_config"]["input_size"] == 32
    metrics = json.loads((out / "metrics.json").read_text())
    assert {"balanced_accuracy", "macro_f1"} <= set(metrics["val"])
    assert [p["name"] for p in config["strategy"]["phases"]] == ["top1", "top2"]  # 2 epochs: 2 groups unfrozen
    lines = tlearn("predict", str(out), str(data / "rare"), "--json").stdout.splitlines()
    assert len([json.loads(line) for line in lines if line.startswith("{")]) == 8
