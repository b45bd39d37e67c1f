"""The gain of distillation over several seeds, under two ways of picking the student's weights:

- best epoch: each student's epoch with the best val accuracy, the headline figure of the run (model selection
  on val, as in every tlearn run). On a small val set (flowers: 150 images) picking the best of many noisy epochs
  flatters the student whose val accuracy swings more, so the gain can come out larger than it is.
- last epoch: each student's weights after its final epoch, picked by nothing (history.csv's last row; runs
  distilled before commit c498dda carry the best epoch's figures there instead).

    python benchmarks/distill_gain.py RUN [RUN ...]      # runs of `tlearn distill ... --student-alone`
"""
from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path
from statistics import mean, stdev

from tlearn.constants import ALONE_DIR  # torch-free


def last_epoch_accuracy(run: Path) -> float:
    with open(run / "history.csv") as f:
        rows = list(csv.DictReader(f))
    value = rows[-1].get("val_accuracy") if rows else None
    if not value:
        raise SystemExit(f"{run / 'history.csv'}: no val accuracy for the last epoch; compare runs with a val split.")
    return float(value)


def gains(run: Path) -> dict:
    block = json.loads((run / "metrics.json").read_text())["distillation"]
    if block.get("student_alone_accuracy") is None:
        raise SystemExit(f"{run}: no student-alone run to compare with; distil again with --student-alone.")
    distilled, alone = last_epoch_accuracy(run), last_epoch_accuracy(run / ALONE_DIR)
    return {"run": str(run), "best": (block["student_accuracy"], block["student_alone_accuracy"]),
            "last": (distilled, alone), "speedup": block["speedup_batch1"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", type=Path)
    rows = [gains(run) for run in p.parse_args().runs]
    print(f"{'run':<28} {'best epoch: distilled / alone':>30} {'gain':>6} {'last epoch: distilled / alone':>30} "
          f"{'gain':>6} {'speed-up b1':>11}")
    for r in rows:
        (bd, ba), (ld, la) = r["best"], r["last"]
        print(f"{r['run'][-28:]:<28} {bd:>21.3f} / {ba:.3f} {100 * (bd - ba):>+6.1f} {ld:>21.3f} / {la:.3f} "
              f"{100 * (ld - la):>+6.1f} {r['speedup']:>10.1f}x")
    for name in ("best", "last"):
        points = [100 * (r[name][0] - r[name][1]) for r in rows]
        spread = f" (sd {stdev(points):.1f}, {sum(g > 0 for g in points)} of {len(points)} above 0)" \
            if len(points) > 1 else ""
        print(f"mean gain, {name} epoch: {mean(points):+.2f} points over {len(points)} run(s){spread}")


if __name__ == "__main__":
    main()
