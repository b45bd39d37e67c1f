"""tlearn.fitting: data -> backbone -> strategy -> evaluation -> run directory (written by tlearn.runs.writer)."""
from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path

import torch

from .backbones.model import load_backbone
from .backbones.registry import count_parameters
from .config import FitConfig
from .data.layout import load_splits
from .data.leakage import check_leakage, log_leakage
from .runs.run import Run
from .runs.writer import RunWriter, evaluate_splits, run_config, run_inputs, settle_runtime
from .strategies import FitContext, get_strategy
from .train.distributed import dist_env

log = logging.getLogger("tlearn")


def fit(data: str | Path, out: str | Path, **options) -> Run:
    """Train a classifier on DATA with a transfer strategy and write the run directory OUT.

    options are FitConfig fields (strategy, backbone, weights, seed, ...). Returns the finished Run.
    """
    return fit_config(FitConfig(data=str(data), out=str(out), **options))


def fit_config(cfg: FitConfig) -> Run | None:
    """Run the fit that cfg describes; None in a torchrun worker other than rank 0 (which writes the run)."""
    start = time.perf_counter()
    is_main = dist_env().is_main
    writer = RunWriter(cfg.out, overwrite=cfg.overwrite, resume=cfg.resume, is_main=is_main)
    torch.manual_seed(cfg.seed)
    device, precision, cache_dir = settle_runtime(cfg.device, cfg.precision, cfg.cache_dir)

    splits = load_splits(cfg.data, cfg.val_fraction, cfg.seed)
    log.info("data %s: %d classes; train %d, val %d (%s), test %d", splits.root, len(splits.classes),
             len(splits.train), len(splits.val), splits.val_source, len(splits.test))
    leakage = check_leakage(splits, cache_dir) if is_main else None  # before training: loud, early
    if leakage is not None:
        log_leakage(leakage)
    backbone, info = load_backbone(cfg.backbone, cfg.weights, cfg.weights_sha256)
    if cfg.image_size:  # recorded in config.yaml, so predict/evaluate/export use it too
        info = dataclasses.replace(info, data_config=info.data_config.with_size(cfg.image_size))
    if cfg.train_size:
        info = dataclasses.replace(info, data_config=dataclasses.replace(info.data_config, train_size=cfg.train_size))
    log.info("backbone %s (%s weights, %s), %d px, %s on %s", info.name, info.weights, info.weights_origin,
             info.data_config.input_size, precision, device)
    strategy = get_strategy(cfg.strategy, cfg)
    writer.start(run_inputs(info, splits, cfg.strategy))  # only once the inputs are known to be usable
    ctx = FitContext(splits=splits, backbone=backbone, backbone_info=info, out=writer.out, config=cfg,
                     precision=precision, device=str(device), cache_dir=cache_dir)
    result = strategy.fit(ctx)
    info = result.backbone_info or info  # --strategy auto may have chosen another input size
    if not is_main:  # under torchrun only rank 0 evaluates and writes the run directory
        return None
    train_seconds = time.perf_counter() - start

    model = result.model.eval()
    evaluated = evaluate_splits(model, splits, info.data_config, precision=precision, device=str(device),
                                batch_size=cfg.batch_size, cache_dir=cache_dir, progress=cfg.progress)
    metrics = {"train": result.train_metrics} if result.train_metrics else {}
    metrics.update(evaluated.metrics)
    skipped = list(splits.skipped) + list(result.skipped) + evaluated.skipped
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
    config = run_config({"fit": cfg.to_dict(), "strategy": {"name": cfg.strategy, **result.details}}, info, splits,
                        precision, str(device))
    return writer.finish(model, splits.classes, config, result.history, metrics, evaluated.predictions,
                         extra_files=result.files)
