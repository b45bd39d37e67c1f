"""tlearn.fitting: data -> backbone -> strategy -> evaluation -> run directory (written by tlearn.runs.writer)."""
from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path

import torch

from .auto.advice import data_findings
from .backbones.model import load_backbone
from .backbones.registry import count_parameters
from .config import FitConfig
from .constants import AUTO_BACKBONE
from .data.groups import groups_record, shared_groups, shared_groups_text
from .data.layout import SPLITS, DataSplits, load_splits
from .data.leakage import check_leakage, log_leakage
from .errors import DataError
from .evaluate.without_copies import figures_without_copies
from .features.sharded import Extraction, fill_cache
from .data.multilabel import refuse_multilabel
from .runs.run import Run
from .runs.writer import RunWriter, evaluate_splits, run_config, run_inputs, settle_runtime
from .strategies import FitContext, get_strategy
from .strategies.recipes import apply_recipe
from .train.distributed import dist_env, from_main

log = logging.getLogger("tlearn")


def fit(data: str | Path, out: str | Path, **options) -> Run:
    """Train a classifier on DATA with a transfer strategy and write the run directory OUT.

    options are FitConfig fields (strategy, backbone, weights, seed, ...). Returns the finished Run.
    """
    return fit_config(FitConfig(data=str(data), out=str(out), **options))


def choose_backbone(cfg: FitConfig, splits, cache_dir: Path):
    """--backbone auto: rank the candidate sources on train (features cached for the fit that follows). Under
    torchrun the features are extracted over all processes and rank 0 ranks: (winner, ranking or None there)."""
    from .rank.ranking import fill_rank_features, rank_sources
    from .rank.sources import parse_sources

    sources = parse_sources(cfg.rank_sources)
    options = dict(batch_size=cfg.batch_size, precision=cfg.precision, device=cfg.device, cache_dir=cache_dir,
                   num_workers=cfg.num_workers, progress=cfg.progress)
    ranking = None
    if fill_rank_features(splits, sources, **options):
        ranking = rank_sources(splits, sources, [cfg.rank_metric], seed=cfg.seed, **options)
        log.info("--backbone auto: %s by %s over %d source(s) in %.1fs", ranking.best(), cfg.rank_metric,
                 len(ranking.rows), ranking.seconds)
    return from_main(ranking.best() if ranking is not None else None), ranking


def fit_config(cfg: FitConfig) -> Run | None:
    """Run the fit that cfg describes; None in a torchrun worker other than rank 0 (which writes the run)."""
    start = time.perf_counter()
    is_main = dist_env().is_main
    writer = RunWriter(cfg.out, overwrite=cfg.overwrite, resume=cfg.resume, is_main=is_main)
    torch.manual_seed(cfg.seed)
    device, precision, cache_dir = settle_runtime(cfg.device, cfg.precision, cfg.cache_dir)

    splits = load_splits(cfg.data, cfg.val_fraction, cfg.seed, cfg.group_by, cfg.empty_label)
    if cfg.strategy == "auto":  # its search compares candidates by val accuracy, a single-label score
        refuse_multilabel(splits, "--strategy auto")
    log.info("data %s: %d classes; train %d, val %d (%s), test %d", splits.root, len(splits.classes),
             len(splits.train), len(splits.val), splits.val_source, len(splits.test))
    groups = check_groups(splits, cfg.strict, cfg.group_by)
    leakage = check_leakage(splits, cache_dir) if is_main else None  # before training: loud, early
    if leakage is not None:
        log_leakage(leakage)
    backbone_name, ranking = (choose_backbone(cfg, splits, cache_dir) if cfg.backbone == AUTO_BACKBONE
                              else (cfg.backbone, None))
    backbone, info = load_backbone(backbone_name, cfg.weights, cfg.weights_sha256)
    # data facts -> fine-tuning recipe (tlearn.strategies.recipes), the probe's advice (tlearn.auto.advice)
    findings = data_findings(cfg, splits, backbone, info, cache_dir)
    if findings is not None and findings.applied:
        cfg = apply_recipe(cfg, findings.recipe)  # the user's explicit options stay
    if cfg.image_size:  # recorded in config.yaml, so predict/evaluate/export use it too
        info = dataclasses.replace(info, data_config=info.data_config.with_size(cfg.image_size))
    if cfg.dicom_window != info.data_config.dicom_window:  # recorded with the model, so predict/export decode alike
        info = dataclasses.replace(info, data_config=dataclasses.replace(info.data_config,
                                                                         dicom_window=cfg.dicom_window))
    if cfg.train_size:
        info = dataclasses.replace(info, data_config=dataclasses.replace(info.data_config, train_size=cfg.train_size))
    log.info("backbone %s (%s weights, %s), %d px, %s on %s", info.name, info.weights, info.weights_origin,
             info.data_config.input_size, precision, device)
    if cfg.strategy == "linear-probe" and not fill_probe_features(cfg, splits, backbone, info.data_config, cache_dir):
        return None  # a torchrun worker: its share of the features is in rank 0's cache
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
                                batch_size=cfg.batch_size, cache_dir=cache_dir, progress=cfg.progress,
                                out_of_fold=result.out_of_fold)
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
        metrics["leakage"]["without_copies"] = figures_without_copies(evaluated.predictions,
                                                                      leakage.copied_from_train)
    if findings is not None:
        metrics["data_findings"] = findings.to_dict()
    if groups is not None:
        metrics["groups"] = groups
    if skipped:
        log.warning("skipped %d unreadable or non-image file(s):\n%s", len(skipped),
                    "\n".join(f"  {s.path}: {s.reason}" for s in skipped))
    sections = {"fit": cfg.to_dict(), "strategy": {"name": cfg.strategy, **result.details}}
    if findings is not None and findings.applied:  # the recipe finetune used and the fact that chose it
        sections["strategy"]["recipe"] = findings.recipe.to_dict()
    elif findings is not None:  # a probe: the recipe finetune would use (extend carries it over)
        sections["data_findings"] = {"recipe": findings.recipe.to_dict()}
    if ranking is not None:
        sections["rank"] = ranking.to_dict()
    if evaluated.task is not None:  # what evaluate, predict, export and serve need to score a multi-label run
        sections["task"] = evaluated.task
    config = run_config(sections, info, splits, precision, str(device))
    return writer.finish(model, splits.classes, config, result.history, metrics, evaluated.predictions,
                         extra_files=result.files)


def fill_probe_features(cfg: FitConfig, splits: DataSplits, backbone, data_config, cache_dir: Path) -> bool:
    """Under torchrun, the features the linear probe and the evaluation will read (train, val, test) extracted
    over all processes into rank 0's cache; whether this process goes on (rank 0, or a single process)."""
    jobs = [Extraction(backbone, splits.split(name), data_config) for name in SPLITS if splits.split(name)]
    return fill_cache(jobs, precision=cfg.precision, device=cfg.device, batch_size=cfg.batch_size,
                      cache_dir=cache_dir, num_workers=cfg.num_workers, progress=cfg.progress).is_main


def check_groups(splits: DataSplits, strict: bool, group_by: str | None) -> dict | None:
    """metrics.json's 'groups' record (None when no image has a group); a group (patient) in two splits is warned
    about, or with strict refused before anything is trained."""
    if not splits.has_groups:
        return None
    by_split = {name: splits.split(name) for name in SPLITS}
    shared = shared_groups(by_split)
    record = groups_record(by_split, group_by, splits.unmatched, shared)
    log.info("groups: %s", ", ".join(f"{name} {n}" for name, n in record["counts"].items()))
    if shared and strict:
        raise DataError(f"--strict: {shared_groups_text(shared)}\nMove each group's images into one split (or "
                        "drop --strict to train anyway, with a warning).")
    if shared:
        log.warning("%s", shared_groups_text(shared))
    return record
