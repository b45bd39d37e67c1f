"""How well a teacher judges what a distilled student sees: val images at the student's size, upsampled to the
teacher's (what `tlearn distill --augment ...` feeds the teacher), for several student sizes.

    python benchmarks/teacher_view_accuracy.py RUN DATA [--sizes 64,96,128]
"""
from __future__ import annotations

import argparse

import torch

from tlearn.data.images import load_rgb
from tlearn.data.layout import load_splits
from tlearn.data.transforms import eval_transform
from tlearn.distill.views import teacher_view
from tlearn.runs.run import Run


def accuracy_at(run: Run, samples, student_size: int, batch: int = 50) -> float:
    model, teacher_cfg = run.model.eval(), run.data_config
    student_cfg = teacher_cfg.with_size(student_size)
    correct = 0
    with torch.inference_mode():
        for i in range(0, len(samples), batch):
            chunk = samples[i : i + batch]
            x = torch.stack([eval_transform(student_cfg)(load_rgb(s.path)) for s in chunk])
            predicted = model(teacher_view(x, student_cfg, teacher_cfg)).argmax(1)
            correct += int((predicted == torch.tensor([s.label for s in chunk])).sum())
    return correct / len(samples)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run")
    p.add_argument("data")
    p.add_argument("--sizes", default="64,96,128")
    args = p.parse_args()
    run = Run(args.run)
    val = load_splits(args.data).val
    own = run.data_config.input_size
    for size in [int(s) for s in args.sizes.split(",")] + [own]:
        print(f"student {size:4d} px -> teacher {own} px: teacher val accuracy {accuracy_at(run, val, size):.3f}")


if __name__ == "__main__":
    main()
