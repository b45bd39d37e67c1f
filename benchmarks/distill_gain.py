"""The gain of distillation over seeds: distilled student against the same student trained alone, with mean and
spread, on val and on test where the data has a test split, plus what each part cost and the batch-1 latency.

Two ways of picking each student's weights:

- best epoch: each student's epoch with the best val accuracy, the headline figure of the run (model selection
  on val, as in every tlearn run). On a small val set (flowers: 150 images) picking the best of many noisy epochs
  flatters the student whose val accuracy swings more, so the gain can come out larger than it is. Test figures
  are of these weights, and test is never used to pick them.
- last epoch: each student's weights after its final epoch, picked by nothing (history.csv's last row; runs
  distilled before commit c498dda carry the best epoch's figures there instead).

    python benchmarks/distill_gain.py RUN [RUN ...]      # runs of `tlearn distill` (with its student-alone run)
    python benchmarks/distill_gain.py --data DATA --teacher T --out runs/S --seeds 0 1 2 [--recipe consistent] \\
        [--student efficientnet_lite0 --student-weights pretrained --student-size 128] [--unlabeled DIR] \\
        [--epochs N] [--distill-args "--augment none --temperature 2"]
        # runs `tlearn distill` once per seed into runs/S-seed0, -seed1, ... (a finished run is reused), then sums up
"""
from __future__ import annotations

import argparse
import csv
import json
import shlex
import subprocess
import sys
from pathlib import Path
from statistics import mean, stdev

from tlearn.constants import ALONE_DIR  # torch-free

SECONDS = ("decode_unlabeled", "teacher_outputs", "teacher_views", "distill_train", "alone_train", "evaluate_and_latency", "total")


def last_epoch_accuracy(run: Path) -> float:
    with open(run / "history.csv") as f:
        rows = list(csv.DictReader(f))
    value = rows[-1].get("val_accuracy") if rows else None
    if not value:
        raise SystemExit(f"{run / 'history.csv'}: no val accuracy for the last epoch; compare runs with a val split.")
    return float(value)


def split_figures(block: dict) -> dict[str, dict]:
    """{split: {teacher, distilled, alone}} for the headline split and the other one (test) when present."""
    figures = {block.get("split", "val"): {"teacher": block.get("teacher_accuracy"),
                                           "distilled": block["student_accuracy"],
                                           "alone": block["student_alone_accuracy"]}}
    for split in ("val", "test"):
        if isinstance(block.get(split), dict):
            figures[split] = {"teacher": block[split].get("teacher_accuracy"),
                              "distilled": block[split]["student_accuracy"],
                              "alone": block[split].get("student_alone_accuracy")}
    return figures


def gains(run: Path) -> dict:
    block = json.loads((run / "metrics.json").read_text())["distillation"]
    if block.get("student_alone_accuracy") is None:
        raise SystemExit(f"{run}: no student-alone run to compare with; distil again with --student-alone (the "
                         "default; drop --no-student-alone).")
    distilled, alone = last_epoch_accuracy(run), last_epoch_accuracy(run / ALONE_DIR)
    return {"run": str(run), "best": (block["student_accuracy"], block["student_alone_accuracy"]),
            "last": (distilled, alone), "speedup": block["speedup_batch1"], "splits": split_figures(block),
            "seconds": block.get("seconds") or {},
            "ms_batch1": (block.get("teacher_ms_batch1"), block.get("student_ms_batch1"))}


def _spread(values: list[float], digits: int = 3) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    sd = f" ± {stdev(values):.{digits}f}" if len(values) > 1 else ""
    return f"{mean(values):.{digits}f}{sd}"


def summary(rows: list[dict]) -> list[str]:
    """The table and the mean ± standard deviation over the runs."""
    lines = [f"{'run':<28} {'best epoch: distilled / alone':>30} {'gain':>6} {'last epoch: distilled / alone':>30} "
             f"{'gain':>6} {'speed-up b1':>11}"]
    for r in rows:
        (bd, ba), (ld, la) = r["best"], r["last"]
        lines.append(f"{r['run'][-28:]:<28} {bd:>21.3f} / {ba:.3f} {100 * (bd - ba):>+6.1f} {ld:>21.3f} / "
                     f"{la:.3f} {100 * (ld - la):>+6.1f} {r['speedup']:>10.1f}x")
    for name in ("best", "last"):
        points = [100 * (r[name][0] - r[name][1]) for r in rows]
        spread = f" (sd {stdev(points):.1f}, {sum(g > 0 for g in points)} of {len(points)} above 0)" \
            if len(points) > 1 else ""
        lines.append(f"mean gain, {name} epoch: {mean(points):+.2f} points over {len(points)} run(s){spread}")
    lines.append(f"mean ± sd over {len(rows)} run(s), best-epoch weights:")
    lines.append(f"  {'split':<6} {'teacher':>15} {'distilled':>15} {'alone':>15} {'gain (points)':>15}")
    for split in ("val", "test"):
        figs = [r["splits"][split] for r in rows if split in r["splits"]]
        if not figs:
            continue
        gain = [100 * (f["distilled"] - f["alone"]) for f in figs if f["alone"] is not None]
        lines.append(f"  {split:<6} {_spread([f['teacher'] for f in figs]):>15} "
                     f"{_spread([f['distilled'] for f in figs]):>15} {_spread([f['alone'] for f in figs]):>15} "
                     f"{_spread(gain, 1):>15}")
    seconds = {k: [r["seconds"][k] for r in rows if r["seconds"].get(k) is not None] for k in SECONDS}
    if any(seconds.values()):
        lines.append("  seconds per run: " + ", ".join(f"{k} {_spread(v, 0)}" for k, v in seconds.items() if v))
    teacher_ms = [r["ms_batch1"][0] for r in rows if r["ms_batch1"][0]]
    student_ms = [r["ms_batch1"][1] for r in rows if r["ms_batch1"][1]]
    if teacher_ms and student_ms:
        lines.append(f"  batch-1 CPU latency, ms per image: teacher {_spread(teacher_ms, 2)}, student "
                     f"{_spread(student_ms, 2)}; speed-up {_spread([r['speedup'] for r in rows], 1)}x")
    return lines


def run_seeds(args: argparse.Namespace) -> list[Path]:
    """`tlearn distill` once per seed (one process each); a finished run directory is reused."""
    runs = []
    for seed in args.seeds:
        out = Path(f"{args.out}-seed{seed}")
        runs.append(out)
        metrics = out / "metrics.json"
        if metrics.is_file() and "distillation" in json.loads(metrics.read_text()):
            print(f"{out}: finished before, reused", file=sys.stderr)
            continue
        command = [sys.executable, "-m", "tlearn", "distill", args.data, "--teacher", args.teacher, "--out",
                   str(out), "--seed", str(seed), "--recipe", args.recipe, "--no-progress"]
        for flag, option in (("student", "--student"), ("student_weights", "--student-weights"),
                             ("student_size", "--image-size"), ("unlabeled", "--unlabeled"), ("epochs", "--epochs")):
            if getattr(args, flag) is not None:
                command += [option, str(getattr(args, flag))]
        command += shlex.split(args.distill_args)
        print("$ " + " ".join(command), file=sys.stderr, flush=True)
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return runs


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="*", type=Path, help="finished distillation runs to sum up")
    p.add_argument("--data", help="run `tlearn distill` on DATA for each seed (with --teacher and --out)")
    p.add_argument("--teacher")
    p.add_argument("--out", help="run directory prefix: OUT-seed0, OUT-seed1, ...")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--recipe", default="hinton", choices=("hinton", "consistent", "stored"))
    p.add_argument("--student")
    p.add_argument("--student-weights")
    p.add_argument("--student-size", type=int)
    p.add_argument("--unlabeled")
    p.add_argument("--epochs", type=int)
    p.add_argument("--distill-args", default="", help="further `tlearn distill` options, in one quoted string")
    args = p.parse_args()
    runs = list(args.runs)
    if args.data:
        if not (args.teacher and args.out):
            p.error("--data needs --teacher and --out")
        runs += run_seeds(args)
    if not runs:
        p.error("give finished runs, or --data DATA --teacher T --out PREFIX to run them")
    print("\n".join(summary([gains(run) for run in runs])))


if __name__ == "__main__":
    main()
