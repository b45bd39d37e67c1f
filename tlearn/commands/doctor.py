"""tlearn doctor DATA [--backbone B] [--out DIR] [--json] [--strict]"""
from __future__ import annotations

import json
import sys

from ..constants import DEFAULT_BACKBONE, DEFAULT_BATCH_SIZE, LABEL_RANKINGS, PRECISIONS
from . import examples

def register(sub) -> None:
    p = sub.add_parser(
        "doctor", help="look at a dataset: duplicates (also across splits), label issues, outliers, odd files",
        description="Examine DATA (any layout fit accepts) with the backbone's cached features: exact and near "
                    "duplicates within and across splits, suspected label issues (cross-validated linear probe, "
                    "confident learning), outliers, unreadable files, size outliers and class counts. Without "
                    "--out it prints a summary and writes nothing but the shared feature cache.",
        **examples("tlearn doctor flowers/ --out doctor/flowers      # doctor/flowers/doctor.html + doctor.json",
                   "tlearn doctor xray/ --strict --json > doctor.json  # exit 1 on duplicates across splits"))
    p.add_argument("data", help="data folder (train/ [val/ test/] or a class tree) or CSV manifest")
    p.add_argument("--backbone", default=DEFAULT_BACKBONE, help="backbone whose features are compared "
                   f"(default {DEFAULT_BACKBONE}; use the one you will fit with, so fit reuses the features)")
    p.add_argument("--weights", default=None, help="pretrained (default), none, or a weights file, as in fit")
    p.add_argument("--image-size", type=int, default=None, help="input size, as in fit")
    p.add_argument("--out", default=None, help="write DIR/doctor.html and DIR/doctor.json")
    p.add_argument("--json", action="store_true", help="print doctor.json to stdout instead of the summary")
    p.add_argument("--strict", action="store_true", help="exit with status 1 when a duplicate spans two splits")
    p.add_argument("--rank-by", default="self_confidence", choices=LABEL_RANKINGS,
                   help="how label issues are ranked (default self_confidence: the given label's probability)")
    p.add_argument("--seed", type=int, default=0, help="seed of the val hold-out and the probe's folds, as in fit")
    p.add_argument("--val-fraction", type=float, default=0.2, help="held out of train when there is no val/")
    p.add_argument("--device", default="auto")
    p.add_argument("--precision", default="auto", choices=list(PRECISIONS))
    p.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE)
    p.add_argument("--cache-dir", default=None, help="feature cache (default: TLEARN_CACHE or ~/.cache/tlearn)")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..doctor import diagnose, write_doctor
    from ..doctor.page import summary_text

    report = diagnose(args.data, args.backbone, weights=args.weights, image_size=args.image_size,
                      ranking=args.rank_by, seed=args.seed, val_fraction=args.val_fraction, device=args.device,
                      precision=args.precision, cache_dir=args.cache_dir, batch_size=args.batch_size,
                      progress=args.progress and not args.json)
    if report is None:  # a torchrun worker: rank 0 examines and writes
        return 0
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(summary_text(report))
    if args.out:
        html, js = write_doctor(report, args.out)
        print(f"written: {html}  {js}", file=sys.stderr if args.json else sys.stdout)
    leaks = report.cross_split_duplicates
    if args.strict and leaks:
        print(f"tlearn doctor: {len(leaks)} duplicate group(s) span two splits (--strict)", file=sys.stderr)
        return 1
    return 0
