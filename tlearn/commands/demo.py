"""tlearn demo: the main job, end to end, on real images that come with an installed package."""
from __future__ import annotations

import argparse

from . import examples
from .options import add_json


def per_class(text: str) -> dict[str, int]:
    from ..demo import SPLITS

    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        values = []
    if len(values) != len(SPLITS):
        raise argparse.ArgumentTypeError(f"expected three whole numbers TRAIN,VAL,TEST (e.g. 60,30,30), got {text!r}")
    return dict(zip(SPLITS, values))


def register(sub) -> None:
    p = sub.add_parser("demo", help="train and evaluate on built-in real images (a few minutes, offline)",
                       description="Train a linear probe on images that come with an installed package, evaluate "
                                   "it, run a short transfer study against training from scratch, and print a "
                                   "summary with where the reports are.",
                       **examples("tlearn demo                          # a few minutes; runs in ./tlearn-demo",
                                  "tlearn demo --out /tmp/demo --no-study"))
    p.add_argument("--out", default="tlearn-demo", metavar="DIR", help="folder for the demo's run directories")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
    p.add_argument("--no-study", dest="study", action="store_false",
                   help="skip the short transfer study (scratch vs linear-probe)")
    p.add_argument("--per-class", type=per_class, default=None, metavar="TRAIN,VAL,TEST",
                   help="images of each class per split (default 60,30,30; less where the source has fewer)")
    add_json(p, "print the runs, their val/test figures and reports as JSON instead of the summary")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..demo import run_demo, summary_lines

    from .fit import split_summary
    from .output import emit

    result = run_demo(args.out, progress=args.progress, study=args.study, per_class=args.per_class)
    runs = {name: {"run": str(run.path), **split_summary(run.metrics)} for name, run in result["runs"].items()}
    emit(args.json, {"data": str(result["data"].path), "seconds": result["seconds"], "runs": runs},
         ["", *summary_lines(result)])
    return 0
