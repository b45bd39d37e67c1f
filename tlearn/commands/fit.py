"""tlearn fit DATA --out RUN [--strategy S] [--backbone B] ..."""
from __future__ import annotations

import argparse
import json
from dataclasses import fields

from . import examples

# tlearn.data.augment.PRESETS, repeated here so that parsing arguments does not import torch (a test checks both agree)
AUGMENT_PRESETS = ("none", "flip", "crop", "light", "medium", "strong")


def add_fit_arguments(p) -> None:
    """Arguments shared by every command that trains (fit, and later study/distill)."""
    p.add_argument("--strategy", default="linear-probe",
                   help="linear-probe (default), finetune, gradual, lp-ft, scratch, or auto: search recipes on val "
                        "within --budget-minutes")
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
    p.add_argument("--budget-minutes", type=float, default=None,
                   help="--strategy auto: wall-clock budget for the whole fit, final evaluation included "
                        "(default 15); rerunning the same command continues an interrupted search")
    add_training_arguments(p)


def add_training_arguments(p) -> None:
    """Options of the gradient-based strategies (finetune, gradual, lp-ft, scratch); see tlearn.train."""
    g = p.add_argument_group("fine-tuning (finetune, gradual, lp-ft, scratch)")
    g.add_argument("--epochs", type=int, default=None, help="epochs of the main phase (strategy default)")
    g.add_argument("--head-epochs", type=int, default=None,
                   help="finetune: train the head alone for N epochs first, instead of starting from the linear "
                        "probe (default 0: the probe is the head)")
    g.add_argument("--lr", type=float, default=None, help="peak learning rate of the head (strategy default)")
    g.add_argument("--lr-ratio", type=float, default=None,
                   help="head lr / stem lr: rates fall geometrically from head to stem (default 10)")
    g.add_argument("--optimizer", choices=["adamw", "sgd"], default=None, help="strategy default")
    g.add_argument("--weight-decay", type=float, default=0.01)
    g.add_argument("--train-batch-size", type=int, default=32, help="images per training step (per process)")
    g.add_argument("--augment", choices=list(AUGMENT_PRESETS), default=None,
                   help="augmentation preset (strategy default); flip only mirrors the eval view; crop does not "
                        "flip (traffic signs, text); strong adds mixup/cutmix")
    g.add_argument("--image-size", type=int, default=None,
                   help="input size to train and predict at (e.g. 32 for 32 px images); default the backbone's")
    g.add_argument("--train-size", type=int, default=None,
                   help="size of the random crops fine-tuning trains on, when it should differ from the size it "
                        "predicts at (efficientnet_lite0: trains at 224, predicts at 256)")
    g.add_argument("--unfreeze-every", type=int, default=1, help="gradual: epochs between unfreezing groups")
    g.add_argument("--freeze-bn", action=argparse.BooleanOptionalAction, default=None,
                   help="keep BatchNorm statistics fixed (strategy default: on for finetune and lp-ft)")
    g.add_argument("--sampler", choices=["balanced"], default=None, help="balanced: draw classes equally often")
    g.add_argument("--label-smoothing", type=float, default=None,
                   help="strategy default: 0 for finetune (its head starts from the probe, which already fits "
                        "train), 0.1 otherwise")
    g.add_argument("--grad-clip", type=float, default=1.0, help="max gradient norm (0: off)")
    g.add_argument("--l2-sp", type=float, default=None, metavar="ALPHA",
                   help="L2-SP: pull the backbone towards its pretrained weights with strength ALPHA instead of "
                        "only decaying weights to zero (default 0.1 for finetune, off otherwise; 0: off)")
    g.add_argument("--ema", type=float, default=None, metavar="DECAY",
                   help="keep a moving average of the weights (e.g. 0.99) and evaluate and save it instead")
    g.add_argument("--accumulation", type=int, default=1, help="micro-batches per optimizer step")
    g.add_argument("--patience", type=int, default=None, help="stop after N epochs without better val accuracy")
    g.add_argument("--max-seconds", type=float, default=None, help="wall-clock budget for training")
    g.add_argument("--resume", action="store_true", help="continue from RUN/checkpoints after an interruption")


def config_from_args(args):
    """FitConfig from parsed arguments (imported here: parsing must not pay for importing torch)."""
    from ..config import FitConfig

    known = {f.name for f in fields(FitConfig)}
    return FitConfig(**{k: v for k, v in vars(args).items() if k in known})


def register(sub) -> None:
    p = sub.add_parser("fit", help="train a classifier on a folder of images",
                       description="Train on DATA (train/ [val/ test/] class folders, a flat class tree, or a CSV).",
                       **examples("tlearn fit flowers --out runs/flowers        # linear probe, the default",
                                  "tlearn fit flowers --out runs/flowers-ft --strategy finetune --epochs 10"))
    p.add_argument("data", help="data folder or CSV manifest")
    p.add_argument("--out", required=True, help="run directory to write")
    add_fit_arguments(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from ..fit import fit_config

    result = fit_config(config_from_args(args))
    if result is None:  # a torchrun worker other than rank 0: rank 0 writes and reports the run
        return 0
    m = result.metrics
    summary = {split: {k: round(v, 4) for k, v in m[split].items() if k != "n"} | {"n": m[split]["n"]}
               for split in ("val", "test") if split in m}
    summary.update(train_seconds=m["train_seconds"], skipped=len(m["skipped"]), run=str(result.path))
    print(json.dumps(summary, indent=2))
    return 0
