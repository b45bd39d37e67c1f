"""tlearn predict RUN IMAGE_OR_DIR ... [--json]"""
from __future__ import annotations

import json
import sys


def register(sub) -> None:
    p = sub.add_parser("predict", help="label images with a trained run")
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

    predictions, skipped = Run(args.run).predict(args.images, batch_size=args.batch_size, tta=args.tta)
    for pred in predictions:
        if args.json:
            print(json.dumps(pred.to_dict()))
        else:
            print(f"{pred.path}\t{pred.label}\t{pred.probability:.4f}")
    for s in skipped:
        print(f"skipped {s.path}: {s.reason}", file=sys.stderr)
    return 0 if predictions else 1
