"""tlearn evaluate RUN SPLIT_DIR [--json]"""
from __future__ import annotations

import json

from ..constants import DEFAULT_BATCH_SIZE
from . import examples
from .options import add_json


def register(sub) -> None:
    p = sub.add_parser("evaluate", help="metrics of a run on a labelled folder",
                       **examples("tlearn evaluate runs/flowers flowers/test",
                                  "tlearn evaluate runs/flowers more/ --save-as more   # kept for tlearn report"))
    p.add_argument("run", help="run directory")
    p.add_argument("split", help="class tree (e.g. DATA/test) or CSV manifest")
    add_json(p, "print the metrics as JSON instead of a table")
    p.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE, help="images per forward pass")
    p.add_argument("--save-as", default=None, metavar="NAME",
                   help="also write RUN/predictions/NAME.csv (for reports)")
    p.add_argument("--tta", nargs="?", const="flip", default=None, choices=["flip", "crops"],
                   help="test-time augmentation, as in `tlearn predict --tta`")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..runs.run import Run

    run = Run(args.run)
    if not run.fill_features(args.split, batch_size=args.batch_size, tta=args.tta, progress=not args.json):
        return 0  # a torchrun worker: its share of the features is in rank 0's cache, which evaluates
    metrics = run.evaluate(args.split, batch_size=args.batch_size, save_as=args.save_as, tta=args.tta,
                           progress=not args.json)
    if args.json:
        print(json.dumps(metrics, indent=2))
    else:
        if metrics.get("task") == "multilabel":
            keys = ("macro_auroc", "micro_auroc", "macro_average_precision", "micro_average_precision",
                    "subset_accuracy", "hamming_loss", "loss", "n")
            for key in keys:
                if metrics.get(key) is not None:
                    print(f"{key:>23}: {metrics[key]:.4f}" if key != "n" else f"{key:>23}: {metrics[key]}")
            for row in metrics.get("per_label", []):
                print(f"{row['label']:>23}: AUROC {_num(row['auroc'])}, AP {_num(row['average_precision'])}, "
                      f"sensitivity {_num(row['sensitivity'])}, specificity {_num(row['specificity'])} at "
                      f"{row['threshold']:.3f}, {row['positives']} positive(s)")
            return 0
        ci = metrics.get("ci95", {})
        for key in ("accuracy", "balanced_accuracy", "macro_f1", "loss", "ece", "auroc", "auroc_macro", "n"):
            if key in metrics:
                interval = f"  [{ci[key][0]:.4f}, {ci[key][1]:.4f}]" if key in ci else ""
                print(f"{key:>18}: {metrics[key]:.4f}{interval}" if key != "n" else f"{key:>18}: {metrics[key]}")
        if ci:
            print(f"{'':>18}  [bootstrap 95% intervals over {metrics['ci_units']} "
                  f"{'groups' if metrics['ci_unit'] == 'group' else 'images'}]")
        for s in metrics["skipped"]:
            print(f"skipped {s['path']}: {s['reason']}")
    return 0


def _num(x) -> str:
    return "–" if x is None else f"{x:.3f}"
