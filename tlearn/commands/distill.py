"""tlearn distill DATA --teacher RUN --student NAME --out RUN2 [--temperature T] [--alpha A] [--epochs N] ..."""
from __future__ import annotations

from ..distill.config import DistillConfig
from . import examples
from .options import add_config_arguments, add_json, config_from_args
from .output import emit, split_lines


def register(sub) -> None:
    p = sub.add_parser(
        "distill", help="teach a small, fast student from a trained teacher run (knowledge distillation)",
        description="Knowledge distillation. --recipe hinton (default from random init): the student learns the "
                    "teacher's temperature-softened outputs mixed with the labels of DATA. --recipe consistent "
                    "(Beyer et al. 2022): teacher and student see the identical augmented, mixed-up view, and the "
                    "student learns the teacher's outputs alone, over a long schedule. --recipe stored (default for "
                    "a pretrained student): the same on the teacher's outputs for K stored views per image, "
                    "computed once and cached, with views and epochs planned for --budget-minutes (25). The "
                    "student run is a normal run directory; "
                    "its metrics.json adds a 'distillation' block (teacher, distilled student and the same student "
                    "trained alone: accuracy, size, CPU latency, seconds of each part).",
        **examples("tlearn distill flowers --teacher runs/flowers --out runs/flowers-student",
                   "tlearn distill flowers --teacher runs/flowers --out runs/student-t8 --temperature 8 --epochs 60",
                   "tlearn distill flowers --teacher runs/flowers --out runs/lite0-128 "
                   "--student efficientnet_lite0 --student-weights pretrained --image-size 128 "
                   "--unlabeled flowers-unlabeled --budget-minutes 25"))
    add_config_arguments(p, DistillConfig)
    add_json(p, "print the figures, the distillation block and the run's path as JSON instead of a short summary")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..distill.distillation import distill_config

    result = distill_config(config_from_args(DistillConfig, args))
    m = result.metrics
    summary = {split: {k: round(v, 4) for k, v in m[split].items() if isinstance(v, float)} | {"n": m[split]["n"]}
               for split in ("val", "test") if split in m}
    summary.update(distillation=m["distillation"], train_seconds=m["train_seconds"], skipped=len(m["skipped"]),
                   run=str(result.path))
    d = m["distillation"]
    lines = split_lines(summary)
    if d.get("student_accuracy") is not None:
        lines.append(f"{d.get('split', 'val')}: teacher {_fig(d.get('teacher_accuracy'))}, distilled student "
                     f"{_fig(d.get('student_accuracy'))}, student alone {_fig(d.get('student_alone_accuracy'))}")
    lines += [f"trained in {m['train_seconds']:.1f} s", f"run: {result.path}"]
    emit(args.json, summary, lines)
    return 0


def _fig(x) -> str:
    return "-" if x is None else f"{x:.4f}"
