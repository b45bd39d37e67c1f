"""tlearn predict RUN IMAGE_OR_DIR ... [--json]"""
from __future__ import annotations

import csv
import json
import sys

from . import examples

CSV_FIELDS = ["path", "label", "probability"]


def register(sub) -> None:
    p = sub.add_parser("predict", help="label images with a trained run",
                       description="Print one row per image: CSV (header path,label,probability; fields quoted "
                                   "where needed), or JSON lines with --json. A multi-label run: label holds the "
                                   "labels at or above their thresholds, '|'-separated, followed by p:<label> "
                                   "columns.",
                       **examples("tlearn predict runs/flowers photos/ > labels.csv   # path,label,probability",
                                  "tlearn predict runs/flowers rose.jpg --json        # one JSON object per line"))
    p.add_argument("run", help="run directory")
    p.add_argument("images", nargs="+", help="image files or folders")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--tta", nargs="?", const="flip", default=None, choices=["flip", "crops"],
                   help="test-time augmentation: average over the image and its mirror (flip, the default) "
                        "or over ten crops and mirrors (crops); 2x / 10x the compute. Not for classes that a "
                        "mirror changes (left/right signs, text); measure first: benchmarks/tta.py")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..runs.run import Run

    run = Run(args.run)
    predictions, skipped = run.predict(args.images, batch_size=args.batch_size, tta=args.tta)
    if args.json:
        for pred in predictions:
            print(json.dumps(pred.to_dict()))
    else:  # the csv module quotes a path holding a comma, quote, tab or newline, so no row can be forged
        writer = csv.writer(sys.stdout, lineterminator="\n")
        # multi-label: label is the '|'-joined labels at or above their thresholds, then every label's probability
        extra = [f"p:{c}" for c in run.classes] if run.multilabel else []
        writer.writerow(CSV_FIELDS + extra)
        writer.writerows([str(pred.source), pred.predicted, f"{pred.probability:.4f}"]
                         + [f"{pred.probabilities[c]:.4f}" for c in run.classes if extra] for pred in predictions)
    sys.stdout.flush()
    for s in skipped:
        print(f"skipped {s.path}: {s.reason}", file=sys.stderr)
    return 0 if predictions else 1
