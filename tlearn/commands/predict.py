"""tlearn predict RUN IMAGE_OR_DIR ... [--json]: one row per image, path,predicted,probability."""
from __future__ import annotations

import csv
import json
import sys

from ..files import spreadsheet_row
from . import examples
from .options import add_json
from .output import one_line

CSV_FIELDS = ["path", "predicted", "probability"]  # as in RUN/predictions/*.csv: label would be the truth


def register(sub) -> None:
    p = sub.add_parser("predict", help="label images with a trained run",
                       description="Print one row per image: CSV (header path,predicted,probability; fields "
                                   "quoted where needed), or JSON lines with --json. A multi-label run: predicted "
                                   "holds the labels at or above their thresholds, '|'-separated, followed by "
                                   "p:<label> columns.",
                       **examples("tlearn predict runs/flowers photos/ > labels.csv   # path,predicted,probability",
                                  "tlearn predict runs/flowers rose.jpg --json        # one JSON object per line"))
    p.add_argument("run", help="run directory")
    p.add_argument("images", nargs="+", help="image files or folders")
    add_json(p, "one JSON object per line instead of CSV")
    p.add_argument("--batch-size", type=int, default=32, help="images per forward pass")
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
            print(json.dumps(json_row(pred.to_dict())))
    else:  # the csv module quotes a path holding a comma, quote, tab or newline, so no row can be forged
        writer = csv.writer(sys.stdout, lineterminator="\n")
        # multi-label: predicted is the '|'-joined labels at or above their thresholds, then every label's probability
        extra = [f"p:{c}" for c in run.classes] if run.multilabel else []
        writer.writerow(spreadsheet_row(CSV_FIELDS + extra))
        # a cell a spreadsheet would run as a formula (=, +, -, @ ...) starts with ' (tlearn.files.spreadsheet_safe)
        writer.writerows(spreadsheet_row([str(pred.source), pred.predicted, f"{pred.probability:.4f}"]
                                         + [f"{pred.probabilities[c]:.4f}" for c in run.classes if extra])
                         for pred in predictions)
    sys.stdout.flush()
    for s in skipped:
        print(f"skipped {one_line(s.path)}: {one_line(s.reason)}", file=sys.stderr)
    return 0 if predictions else 1


def json_row(d: dict) -> dict:
    """A prediction as --json prints it: `predicted` is the model's answer (as in the CSV); `label`, the same
    value under its older name, is kept for scripts that read it and will be removed."""
    return {"path": str(d["path"]), "predicted": d["label"], **{k: v for k, v in d.items() if k not in ("path",)}}
