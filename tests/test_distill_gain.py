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
