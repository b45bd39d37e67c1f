"""tlearn.fit: data -> backbone -> strategy -> evaluation -> run directory."""
from __future__ import annotations

import dataclasses
import json
import logging
import time
from datetime import datetime, timezone
from pathlib import Path

import torch
import yaml

from .backbones.model import load_backbone
from .backbones.registry import count_parameters
from .config import FitConfig, library_versions
from .data.layout import load_splits
from .data.leakage import check_leakage, log_leakage
from .errors import TlearnError
from .evaluate.metrics import classification_metrics
from .evaluate.predict import predict_samples
from .files import atomic_write_text
from .run import Run, prepare_run, save_model, write_history, write_json, write_predictions
from .strategies import FitContext, get_strategy
from .train.distributed import dist_env
from .train.ema import check_decay
from .train.l2sp import check_alpha as check_l2_sp

log = logging.getLogger("tlearn")


def fit(data: str | Path, out: str | Path, **options) -> Run:
    """Train a classifier on DATA with a transfer strategy and write the run directory OUT.

    options are FitConfig fields (strategy, backbone, weights, seed, ...). Returns the finished Run.
    """
    return fit_config(FitConfig(data=str(data), out=str(out), **options))


def _check_settings(cfg: FitConfig) -> None:
    """Settings the training loop would refuse, refused before any work is done."""
    try:
        if cfg.ema is not None:
            check_decay(cfg.ema)
        if cfg.l2_sp is not None:
            check_l2_sp(cfg.l2_sp)
        if cfg.budget_minutes is not None and cfg.strategy != "auto":
            raise ValueError("--budget-minutes is for --strategy auto; other strategies take --max-seconds.")
    except ValueError as exc:
        raise TlearnError(str(exc)) from None


def fit_config(cfg: FitConfig) -> Run:
    start = time.perf_counter()
    _check_settings(cfg)
    torch.manual_seed(cfg.seed)
    out, device, precision, cache_dir = prepare_run(cfg.out, cfg.device, cfg.precision, cfg.cache_dir)

    splits = load_splits(cfg.data, cfg.val_fraction, cfg.seed)
    log.info("data %s: %d classes; train %d, val %d (%s), test %d", splits.root, len(splits.classes),
             len(splits.train), len(splits.val), splits.val_source, len(splits.test))
    leakage = check_leakage(splits, cache_dir) if dist_env().is_main else None  # before training: loud, early
    if leakage is not None:
        log_leakage(leakage)
    backbone, info = load_backbone(cfg.backbone, cfg.weights, cfg.weights_sha256)
    if getattr(cfg, "image_size", None):  # recorded in config.yaml, so predict/evaluate/export use it too
        info = dataclasses.replace(info, data_config=info.data_config.with_size(cfg.image_size))
    if getattr(cfg, "train_size", None):
        info = dataclasses.replace(info, data_config=dataclasses.replace(info.data_config, train_size=cfg.train_size))
    log.info("backbone %s (%s weights, %s), %d px, %s on %s", info.name, info.weights, info.weights_origin,
             info.data_config.input_size, precision, device)
    strategy = get_strategy(cfg.strategy, cfg)
    out.mkdir(parents=True, exist_ok=True)  # only once the inputs are known to be usable
    ctx = FitContext(splits=splits, backbone=backbone, backbone_info=info, out=out, config=cfg,
                     precision=precision, device=str(device), cache_dir=cache_dir)
    result = strategy.fit(ctx)
    info = result.backbone_info or info  # --strategy auto may have chosen another input size
    if not dist_env().is_main:  # under torchrun only rank 0 evaluates and writes the run directory
        return None
    train_seconds = time.perf_counter() - start

    model = result.model.eval()
    metrics: dict = {}
    skipped = list(splits.skipped) + list(result.skipped)
    if result.train_metrics:
        metrics["train"] = result.train_metrics
    for split in ("val", "test"):
        samples = splits.split(split)
        if not samples:
            continue
        probs, fs = predict_samples(model, samples, info.data_config, precision=precision, device=str(device),
                                    batch_size=cfg.batch_size, cache_dir=cache_dir, progress=cfg.progress,
                                    desc=f"{split} features")
        skipped += fs.skipped
        metrics[split] = classification_metrics(fs.labels, probs)
        write_predictions(out / "predictions" / f"{split}.csv", fs.samples, probs, splits.classes)
        log.info("%s: accuracy %.4f, balanced %.4f, macro-F1 %.4f (n=%d)", split, metrics[split]["accuracy"],
                 metrics[split]["balanced_accuracy"], metrics[split]["macro_f1"], metrics[split]["n"])
    if result.history and "val" in metrics and "val_accuracy" not in result.history[-1]:
        result.history[-1].update(val_loss=metrics["val"]["loss"], val_accuracy=metrics["val"]["accuracy"])
    metrics.update(
        train_seconds=round(train_seconds, 3),
        total_seconds=round(time.perf_counter() - start, 3),
        skipped=[s.to_dict() for s in skipped],
        params=count_parameters(model),
    )
    if leakage is not None:
        metrics["leakage"] = leakage.to_dict()
    if skipped:
        log.warning("skipped %d unreadable or non-image file(s):\n%s", len(skipped),
                    "\n".join(f"  {s.path}: {s.reason}" for s in skipped))

    config = {
        "fit": cfg.to_dict(),
        "strategy": {"name": cfg.strategy, **result.details},
        "backbone": info.to_dict(),
        "data": {"root": splits.root, "val_source": splits.val_source, "counts": splits.counts(),
                 "classes": splits.classes},
        "precision": precision,
        "device": str(device),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "versions": library_versions(),
    }
    save_model(model, out / "model.safetensors", {"architecture": info.architecture,
                                                 "num_classes": len(splits.classes)})
    atomic_write_text(out / "config.yaml", yaml.safe_dump(config, sort_keys=False))
    atomic_write_text(out / "classes.json", json.dumps(splits.classes, indent=2) + "\n")
    write_history(out / "history.csv", result.history)
    write_json(out / "metrics.json", metrics)
    log.info("run written to %s (%.1fs)", out, metrics["total_seconds"])
    from .report import write_report_safely  # last, after the run is saved: a report failure never loses a model

    write_report_safely(out)
    return Run(out)
