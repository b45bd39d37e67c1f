"""benchmarks/distill_gain.py: the gain over seeds at the best (headline) and at the last epoch."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tlearn.distill import ALONE_DIR

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "distill_gain.py"


def _fake_run(folder: Path, best: tuple[float, float], last: tuple[float, float]) -> Path:
    """A distilled run directory with its student-alone run: headline (best-epoch) and last-epoch accuracies."""
    for where, accuracy in ((folder, last[0]), (folder / ALONE_DIR, last[1])):
        where.mkdir(parents=True)
        (where / "history.csv").write_text(f"epoch,val_accuracy\n1,0.1\n2,{accuracy}\n")
    block = {"student_accuracy": best[0], "student_alone_accuracy": best[1], "speedup_batch1": 4.0}
    (folder / "metrics.json").write_text(json.dumps({"distillation": block}))
    return folder


def test_gains_are_averaged_per_protocol(tmp_path):
    runs = [_fake_run(tmp_path / "s0", (0.80, 0.75), (0.76, 0.75)),
            _fake_run(tmp_path / "s1", (0.78, 0.77), (0.70, 0.73))]
    out = subprocess.run([sys.executable, str(SCRIPT), *map(str, runs)], check=True, capture_output=True,
                         text=True).stdout
    assert "mean gain, best epoch: +3.00 points over 2 run(s)" in out and "2 of 2 above 0" in out
    assert "mean gain, last epoch: -1.00 points over 2 run(s)" in out and "1 of 2 above 0" in out


def test_a_run_without_the_student_alone_is_refused_with_what_to_do(tmp_path):
    run = _fake_run(tmp_path / "s0", (0.8, 0.7), (0.8, 0.7))
    (run / "metrics.json").write_text(json.dumps({"distillation": {"student_accuracy": 0.8,
                                                                   "student_alone_accuracy": None}}))
    result = subprocess.run([sys.executable, str(SCRIPT), str(run)], capture_output=True, text=True)
    assert result.returncode != 0 and "--student-alone" in result.stderr


def test_a_run_without_val_figures_is_refused_naming_the_file(tmp_path):
    run = _fake_run(tmp_path / "s0", (0.8, 0.7), (0.8, 0.7))
    (run / "history.csv").write_text("epoch,train_loss\n1,0.5\n")
    result = subprocess.run([sys.executable, str(SCRIPT), str(run)], capture_output=True, text=True)
    assert result.returncode != 0 and "history.csv" in result.stderr and "val" in result.stderr


def _with_test_split(run: Path, test: tuple[float, float], seconds: dict) -> Path:
    metrics = json.loads((run / "metrics.json").read_text())
    metrics["distillation"].update(split="val", teacher_accuracy=0.9, teacher_ms_batch1=20.0, student_ms_batch1=5.0,
                                   seconds=seconds,
                                   test={"teacher_accuracy": 0.88, "student_accuracy": test[0],
                                         "student_alone_accuracy": test[1]})
    (run / "metrics.json").write_text(json.dumps(metrics))
    return run


def test_seeds_give_mean_and_spread_on_val_and_test_with_seconds_and_latency(tmp_path):
    # finished runs named like --out PREFIX --seeds 0 1 makes them: reused, not run again (no tlearn call here)
    _with_test_split(_fake_run(tmp_path / "S-seed0", (0.80, 0.75), (0.76, 0.75)), (0.70, 0.60),
                     {"distill_train": 100.0, "alone_train": 40.0, "total": 150.0})
    _with_test_split(_fake_run(tmp_path / "S-seed1", (0.78, 0.77), (0.70, 0.73)), (0.74, 0.72),
                     {"distill_train": 120.0, "alone_train": 50.0, "total": 180.0})
    result = subprocess.run([sys.executable, str(SCRIPT), "--data", "unused", "--teacher", "unused", "--out",
                             str(tmp_path / "S"), "--seeds", "0", "1"], check=True, capture_output=True, text=True)
    out = result.stdout
    assert result.stderr.count("reused") == 2
    val = next(line for line in out.splitlines() if line.strip().startswith("val "))
    test = next(line for line in out.splitlines() if line.strip().startswith("test "))
    assert "0.790 ± 0.014" in val and "0.760 ± 0.014" in val and "3.0 ± 2.8" in val  # distilled, alone, gain
    assert "0.720 ± 0.028" in test and "0.660 ± 0.085" in test and "6.0 ± 5.7" in test
    assert "distill_train 110 ± 14" in out and "alone_train 45 ± 7" in out
    assert "teacher 20.00" in out and "student 5.00" in out and "speed-up 4.0" in out
