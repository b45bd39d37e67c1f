"""tlearn incremental DATA --tasks T --methods ... --out STUDY"""
from __future__ import annotations

import json

from ..incremental.protocol import IncrementalConfig
from . import examples
from .options import add_config_arguments, config_from_args


def register(sub) -> None:
    p = sub.add_parser(
        "incremental", help="measure class-incremental learning on a labelled folder",
        description="Cut DATA's classes into tasks (a seeded, recorded order), learn them one after another with "
                    "each method, and write the accuracy matrix, average incremental accuracy, final accuracy and "
                    "forgetting against joint training to STUDY/incremental.json and incremental.html.",
        **examples("tlearn incremental flowers --tasks 2 --methods analytic,joint --out studies/flowers-inc",
                   "tlearn incremental signs --tasks 4 --image-size 32 --epochs 3 --seeds 2 --out studies/signs"))
    add_config_arguments(p, IncrementalConfig)
    p.set_defaults(func=run)


def run(args) -> int:
    from ..incremental.protocol import run_incremental

    study = run_incremental(config_from_args(IncrementalConfig, args))
    print(json.dumps({"summary": study["summary"], "tasks": study["tasks"],
                      "report": str(args.out) + "/incremental.html"}, indent=2))
    return 0
