"""tlearn incremental DATA --tasks T --methods ... --out STUDY"""
from __future__ import annotations

from ..incremental.config import IncrementalConfig
from . import examples
from .options import add_config_arguments, add_json, config_from_args
from .output import emit


def register(sub) -> None:
    p = sub.add_parser(
        "incremental", help="measure class-incremental learning on a labelled folder",
        description="Cut DATA's classes into tasks (a seeded, recorded order), learn them one after another with "
                    "each method, and write the accuracy matrix, average incremental accuracy, final accuracy and "
                    "forgetting against joint training to STUDY/incremental.json and incremental.html.",
        **examples("tlearn incremental flowers --tasks 2 --methods analytic,joint --out studies/flowers-inc",
                   "tlearn incremental signs --tasks 4 --image-size 32 --epochs 3 --seeds 2 --out studies/signs"))
    add_config_arguments(p, IncrementalConfig)
    add_json(p, "print the per-method summary, the tasks and the report's path as JSON instead of a table")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..incremental.protocol import run_incremental

    study = run_incremental(config_from_args(IncrementalConfig, args))
    report = str(args.out) + "/incremental.html"
    lines = [f"{'method':<16} {'final':>7} {'average':>8} {'forgetting':>10}"]
    for name, row in study["summary"].items():
        lines.append(f"{name:<16} {row['final_accuracy']:>7.4f} {row['average_incremental_accuracy']:>8.4f} "
                     f"{row['forgetting']:>10.4f}")
    emit(args.json, {"summary": study["summary"], "tasks": study["tasks"], "report": report},
         lines + [f"{len(study['tasks'])} tasks; report: {report}"])
    return 0
