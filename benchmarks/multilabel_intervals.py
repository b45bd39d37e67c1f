"""Per-label test AUROC with bootstrap 95% intervals (over patients) from a multi-label run's saved predictions.

    python benchmarks/multilabel_intervals.py RUN [--manifest ../shared/data/nih_chestxray14/labels.csv] [--min-positives 20]

The manifest's group column (patient ids) makes the intervals resample whole patients.
"""
from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

from tlearn.evaluate.intervals import add_multilabel_intervals
from tlearn.evaluate.multilabel import multilabel_metrics, read_multilabel_predictions


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run")
    ap.add_argument("--split", default="test")
    ap.add_argument("--manifest", help="CSV with path and group columns (paths relative to the CSV's folder)")
    ap.add_argument("--min-positives", type=int, default=0)
    args = ap.parse_args()
    run = Path(args.run)
    classes = json.loads((run / "classes.json").read_text())
    table = read_multilabel_predictions(run / "predictions" / f"{args.split}.csv", classes)
    groups = None
    if args.manifest:
        root = Path(args.manifest).parent
        with open(args.manifest, newline="") as f:
            by_path = {str((root / r["path"]).resolve()): r.get("group") or None for r in csv.DictReader(f)}
        groups = [by_path.get(str(Path(p).resolve())) for p in table.paths]
    y, p = table.labels, table.probs
    m = add_multilabel_intervals(multilabel_metrics(y, p, classes), y, p, groups)
    print(f"{run} {args.split}: macro AUROC {m['macro_auroc']:.3f} {m['ci95'].get('macro_auroc')} "
          f"({m['ci_units']} {m['ci_unit']}s)")
    for row in sorted(m["per_label"], key=lambda r: -r["positives"]):
        if row["positives"] >= args.min_positives and row["auroc"] is not None:
            lo, hi = row["auroc_ci95"] or (float("nan"), float("nan"))
            print(f"  {row['label']:<20} positives {row['positives']:>3}  AUROC {row['auroc']:.3f} [{lo:.3f}, {hi:.3f}]")


if __name__ == "__main__":
    main()
