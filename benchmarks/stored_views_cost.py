"""What the teacher costs: its stored views, computed once, against a live teacher over the same schedule.

A live teacher (--recipe consistent) judges every image of every epoch; stored views (--views K, --recipe stored)
are judged once, K per image. For a run on stored views this prints the seconds its views took to compute
(metrics.json) and the seconds a live teacher would take for the same epochs and images: the teacher's forward
pass timed here on a few batches at its training size, in the precision live teaching runs in, times images x
epochs; and their ratio. Given a live run of the same schedule (--live), also both students' accuracies and
training seconds side by side (the stored views' accuracy against live teaching at equal epochs).

    python benchmarks/stored_views_cost.py STORED_RUN [--live LIVE_RUN] [--batches 3]
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
import yaml

from tlearn.device import autocast, resolve_precision
from tlearn.distill.teacher import Teacher


def live_teacher_seconds_per_image(teacher: Teacher, batch: int, batches: int, precision: str) -> float:
    size = teacher.data_config.training_size
    model = teacher.model.eval().to(memory_format=torch.channels_last)
    x = torch.randn(batch, 3, size, size).contiguous(memory_format=torch.channels_last)
    device = torch.device("cpu")
    times = []
    with torch.inference_mode(), autocast(precision, device):
        model(x[:2])
        for _ in range(batches):
            t0 = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - t0)
    return statistics.median(times) / batch


def figures(run: Path) -> tuple[dict, dict]:
    """(distillation block, its seconds)."""
    block = json.loads((run / "metrics.json").read_text())["distillation"]
    return block, block["seconds"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("stored", type=Path, help="a distillation run on stored views")
    p.add_argument("--live", type=Path, help="the same schedule with a live teacher (--recipe consistent)")
    p.add_argument("--batches", type=int, default=3, help="timed teacher batches")
    p.add_argument("--precision", default="auto", help="the live teacher's precision (distill's --precision)")
    args = p.parse_args()
    block, _ = figures(args.stored)
    views = block.get("stored_views")
    if not views:
        raise SystemExit(f"{args.stored}: not a run on stored views (no stored_views in its distillation block).")
    history = (args.stored / "history.csv").read_text().strip().splitlines()
    epochs = len(history) - 1
    images = views["images"]
    teacher = Teacher.from_run(yaml.safe_load((args.stored / "config.yaml").read_text())["teacher"]["run"])
    precision = resolve_precision(args.precision, torch.device("cpu"))
    per_image = live_teacher_seconds_per_image(teacher, 64, args.batches, precision)
    live_seconds = per_image * images * epochs
    # the entry may hold more views than this run used (another run computed them): its share of the seconds
    computed = int(views.get("views_computed") or views["views"])
    stored_seconds = float(views.get("seconds_computing") or 0.0) * views["views"] / computed
    print(f"stored views: {views['views']} per image x {images} images: {stored_seconds:.0f} s to compute "
          f"({views['precision']}; read from the cache in this run: {views['from_cache']} per image)")
    print(f"live teacher for the same schedule ({epochs} epochs x {images} images, {precision}, "
          f"{1000 * per_image:.1f} ms per image): {live_seconds:.0f} s")
    print(f"ratio live / stored: {live_seconds / max(stored_seconds, 1e-9):.1f}x")
    if "mix" in views:
        mix = views["mix"]
        print(f"mixed stored labels vs the teacher on the mixed view ({mix['pairs']} pairs): top-1 agreement "
              f"{mix['top1_agreement']:.3f}, mean total variation {mix['mean_tv']:.3f} (the larger share's view "
              f"alone: {mix['mean_tv_major_view']:.3f})")
    rows = [("stored views", args.stored)] + ([("live teacher", args.live)] if args.live else [])
    for name, run in rows:
        b, s = figures(run)
        test = b.get("test", {})
        print(f"{name:>13}: val {b['student_accuracy']:.4f}, test {test.get('student_accuracy', float('nan')):.4f}; "
              f"training {s['distill_train']:.0f} s, total {s['total']:.0f} s")


if __name__ == "__main__":
    main()
