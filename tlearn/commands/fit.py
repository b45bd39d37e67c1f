"""tlearn fit DATA --out RUN [--strategy S] [--backbone B] ..."""
from __future__ import annotations

import json
from dataclasses import fields

from ..config import FitConfig


def add_fit_arguments(p) -> None:
    """Arguments shared by every command that trains (fit, and later study/distill)."""
    p.add_argument("--strategy", default="linear-probe", help="linear-probe (default)")
    p.add_argument("--backbone", default="efficientnet_lite0",
                   help="registry name (see `tlearn backbones`), timm:<name>, or a tlearn run directory")
    p.add_argument("--weights", default=None,
                   help="pretrained weights: omit for the registry's, 'none' for random init, or a file path")
    p.add_argument("--weights-sha256", default=None, help="refuse weights whose sha256 differs")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--val-fraction", type=float, default=0.2, help="held out of train when DATA has no val/")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--precision", choices=["auto", "bf16", "fp32"], default="auto")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    p.add_argument("--cache-dir", default=None, help="feature cache folder (default TLEARN_CACHE or ~/.cache/tlearn)")
    p.add_argument("--num-workers", type=int, default=None, help="image decoding processes")
    p.add_argument("--class-weights", choices=["auto"], default=None, help="auto: weight classes by 1/frequency")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")


def config_from_args(args) -> FitConfig:
    known = {f.name for f in fields(FitConfig)}
    return FitConfig(**{k: v for k, v in vars(args).items() if k in known})


def register(sub) -> None:
    p = sub.add_parser("fit", help="train a classifier on a folder of images",
                       description="Train on DATA (train/ [val/ test/] class folders, a flat class tree, or a CSV).")
    p.add_argument("data", help="data folder or CSV manifest")
    p.add_argument("--out", required=True, help="run directory to write")
    add_fit_arguments(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from ..fit import fit_config

    result = fit_config(config_from_args(args))
    m = result.metrics
    summary = {split: {k: round(v, 4) for k, v in m[split].items() if k != "n"} | {"n": m[split]["n"]}
               for split in ("val", "test") if split in m}
    summary.update(train_seconds=m["train_seconds"], skipped=len(m["skipped"]), run=str(result.path))
    print(json.dumps(summary, indent=2))
    return 0
