"""tlearn doctor DATA [--backbone B] [--out DIR] [--json] [--fail-on-leakage]"""
from __future__ import annotations

import json
import sys

from ..doctor.config import DoctorConfig
from . import examples
from .options import add_config_arguments, add_json, config_from_args


def register(sub) -> None:
    p = sub.add_parser(
        "doctor", help="look at a dataset: duplicates (also across splits), label issues, outliers, odd files",
        description="Examine DATA (any layout fit accepts) with the backbone's cached features: exact and near "
                    "duplicates within and across splits, suspected label issues (cross-validated linear probe, "
                    "confident learning), outliers, unreadable files, size outliers and class counts. Without "
                    "--out it prints a summary and writes nothing but the shared feature cache.",
        **examples("tlearn doctor flowers/ --out doctor/flowers      # doctor/flowers/doctor.html + doctor.json",
                   "tlearn doctor xray/ --fail-on-leakage --json > doctor.json  # exit 1: duplicates across splits"))
    add_config_arguments(p, DoctorConfig)
    add_json(p, "print doctor.json to stdout instead of the summary")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..doctor import diagnose, write_doctor
    from ..doctor.page import summary_text

    cfg = config_from_args(DoctorConfig, args)
    report = diagnose(cfg.data, cfg.backbone, weights=cfg.weights, image_size=cfg.image_size, ranking=cfg.rank_by,
                      seed=cfg.seed, val_fraction=cfg.val_fraction, device=cfg.device, precision=cfg.precision,
                      cache_dir=cfg.cache_dir, batch_size=cfg.batch_size, num_workers=cfg.num_workers,
                      progress=cfg.progress and not args.json)
    if report is None:  # a torchrun worker: rank 0 examines and writes
        return 0
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(summary_text(report))
    if cfg.out:
        html, js = write_doctor(report, cfg.out)
        print(f"written: {html}  {js}", file=sys.stderr if args.json else sys.stdout)
    leaks = report.cross_split_duplicates
    if cfg.fail_on_leakage and leaks:
        print(f"tlearn doctor: {len(leaks)} duplicate group(s) span two splits (--fail-on-leakage)", file=sys.stderr)
        return 1
    return 0
