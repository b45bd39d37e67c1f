"""tlearn extend: teach a trained run new classes, or more images of its classes, and write RUN2 with its lineage.

RUN2 is an ordinary run directory (its classes: RUN's, then the new ones in sorted order), written through
RunWriter. Methods:
  analytic  frozen backbone: the parent's feature statistics plus NEWDATA's give the closed-form head
            (tlearn.incremental.analytic); no old image is read for training.
  lwf       fine-tune the whole network from the parent on the new images, with the parent's outputs as soft
            targets (LwfLoss) and L2-SP towards the parent's weights; --replay K adds K old images per class.
  naive     the same fine-tuning without soft targets or the pull: the lower bound that shows forgetting.
val/test of RUN2 are those of every data folder in its lineage that is still on disk (evaluation only).
"""
from __future__ import annotations

import logging
import resource
import time
from pathlib import Path

import numpy as np
import torch

from ..backbones.model import TransferModel
from ..backbones.registry import count_parameters
from ..data.layout import DataSplits, Sample, load_splits
from ..data.multilabel import refuse_multilabel
from ..errors import DataError, TlearnError
from ..evaluate.metrics import classification_metrics
from ..features.extract import extract_features
from ..features.statistics import STATS_FILE, FeatureStatistics, to_space
from ..runs.run import Run
from ..runs.writer import RunWriter, evaluate_splits, run_config, run_inputs, settle_runtime
from .analytic import solve_head
from .config import ExtendConfig
from .lineage import added_classes, lineage_splits, parent_lineage, parent_strategy, remap, union
from .step import StepResult

log = logging.getLogger("tlearn")

ANALYTIC_PARENTS = ("linear-probe", "analytic")  # runs whose backbone is the frozen pretrained one


def default_method(parent: Run) -> str:
    return "analytic" if parent_strategy(parent) in ANALYTIC_PARENTS else "lwf"


def extend(run: str | Path, data: str | Path, out: str | Path, **options) -> Run:
    """Extend the run RUN with NEWDATA into OUT; options are ExtendConfig fields (method, head, replay, ...)."""
    return extend_config(ExtendConfig(run=str(run), data=str(data), out=str(out), **options))


def extend_config(cfg: ExtendConfig) -> Run:
    start = time.perf_counter()
    parent = Run(cfg.run)
    if Path(cfg.out).resolve() == parent.path.resolve():
        raise TlearnError(f"--out {cfg.out} is the run being extended; write the extension to a new folder (the "
                          "parent is never overwritten).")
    method = cfg.method or default_method(parent)
    if method == "analytic":
        check_analytic_parent(parent)
    fit = parent.config.get("fit", {})
    seed = fit.get("seed", 0) if cfg.seed is None else cfg.seed
    val_fraction = fit.get("val_fraction", 0.2) if cfg.val_fraction is None else cfg.val_fraction
    device, precision, cache_dir = settle_runtime(cfg.device or fit.get("device", "auto"),
                                                  parent.config.get("precision", "auto"),
                                                  cfg.cache_dir or fit.get("cache_dir"))
    torch.manual_seed(seed)
    if parent.multilabel:
        raise TlearnError(f"{parent.path} is a multi-label run; tlearn extend handles single-label runs only.")
    new = load_splits(cfg.data, val_fraction, seed, fit.get("group_by"), min_classes=1)  # the parent's patients rule
    refuse_multilabel(new, "tlearn extend")
    added = added_classes(parent.classes, new.classes, cfg.data)
    classes = list(parent.classes) + added
    new_train = remap(new.train, new.classes, classes)
    log.info("extend %s (%s) with %s by %s: %d new class(es) %s, %d train images", parent.path,
             parent_strategy(parent), new.root, method, len(added), added, len(new_train))
    step = {"step": None, "run": str(Path(cfg.out).resolve()), "parent": str(parent.path), "method": method,
            "data": new.root, "val_fraction": val_fraction, "seed": seed, "group_by": fit.get("group_by"),
            "classes_added": added,
            "images_added": {c: sum(1 for s in new_train if classes[s.label] == c) for c in new.classes}}
    lineage = parent_lineage(parent)
    step["step"] = len(lineage)
    lineage.append(step)
    writer = RunWriter(cfg.out, overwrite=cfg.overwrite)
    parts, gone = lineage_splits(lineage, classes)
    evaluation = DataSplits(new.root, classes, new_train, union([p.val for p in parts]),
                            union([p.test for p in parts]), "the val/test of every data folder in the lineage",
                            list(new.skipped))
    if method == "analytic":
        writer.start(run_inputs(parent.backbone_info, evaluation, "analytic"))
        result = _analytic(parent, new_train, classes, cfg, precision, device, cache_dir)
    else:
        writer.start(run_inputs(parent.backbone_info, evaluation, method))
        from .finetuned import extend_finetuned  # imports the training loop

        result = extend_finetuned(parent, new_train, classes, added, parts, lineage, cfg, method, seed, precision,
                                  device, cache_dir)
    train_seconds = time.perf_counter() - start
    step["seconds"] = round(train_seconds, 3)
    model = result.model.eval()
    evaluated = evaluate_splits(model, evaluation, parent.data_config, precision=precision, device=str(device),
                                batch_size=fit.get("batch_size", 64), cache_dir=cache_dir, progress=cfg.progress)
    metrics = {"train": result.train_metrics} if result.train_metrics else {}
    metrics.update(evaluated.metrics)
    metrics.update(
        train_seconds=round(train_seconds, 3), total_seconds=round(time.perf_counter() - start, 3),
        peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        skipped=[s.to_dict() for s in list(new.skipped) + list(result.skipped) + evaluated.skipped],
        params=count_parameters(model),
        lineage=[{k: s.get(k) for k in ("step", "method", "data", "classes_added", "images_added", "train_images",
                                        "seconds") if k in s} for s in lineage],
        evaluated_on={"data": [p.root for p in parts], "gone": gone},
    )
    if gone:
        log.warning("val/test of %s left out of the metrics: the folder is gone or changed", ", ".join(gone))
    sections = {"fit": {**fit, "seed": seed, "val_fraction": val_fraction},
                "strategy": {"name": method, **result.details},
                "extend": {**cfg.to_dict(), "method": method, "parent": str(parent.path)}, "lineage": lineage}
    config = run_config(sections, parent.backbone_info, evaluation, precision, str(device))
    return writer.finish(model, classes, config, result.history, metrics, evaluated.predictions,
                         extra_files=result.files)


def check_analytic_parent(parent: Run) -> None:
    strategy = parent_strategy(parent)
    if strategy not in ANALYTIC_PARENTS:
        raise TlearnError(f"--method analytic needs a run whose backbone stayed frozen (a linear-probe run or its "
                          f"analytic extension); {parent.path} was trained with {strategy!r}. Use --method lwf "
                          "(or naive) for a fine-tuned run.")
    if not (parent.path / STATS_FILE).is_file():
        data = parent.config.get("data", {}).get("root", "DATA")
        raise TlearnError(f"{parent.path / STATS_FILE} is missing: {parent.path} was fitted by a tlearn that did not "
                          f"keep the linear probe's feature statistics. Fit it again (`tlearn fit {data} --out NEWRUN`;"
                          " its features come from the cache) and extend the new run.")


def _analytic(parent: Run, train: list[Sample], classes: list[str], cfg: ExtendConfig, precision: str, device,
              cache_dir: Path) -> StepResult:
    start = time.perf_counter()
    old = FeatureStatistics.load(parent.path / STATS_FILE)
    if old.classes != parent.classes or old.dim != parent.backbone_info.feature_dim:
        raise TlearnError(f"{parent.path / STATS_FILE} does not match the run's classes.json or backbone; the run "
                          "folder was edited. Extend an intact run.")
    backbone = parent.model.backbone
    fs = extract_features(backbone, train, parent.data_config, precision=precision, device=device,
                          batch_size=parent.config.get("fit", {}).get("batch_size", 64), cache_dir=cache_dir,
                          progress=cfg.progress, desc="new train features")
    log.info("new train features: %d images (%d from cache) in %.1fs", len(fs.samples), fs.from_cache, fs.seconds)
    empty = [c for k, c in enumerate(classes[len(parent.classes):], len(parent.classes)) if k not in set(fs.labels)]
    if empty:
        raise DataError(f"new class(es) {empty} have no readable training image in {cfg.data}; add images.")
    stats = old.with_classes(classes) + FeatureStatistics.from_features(fs.features, fs.labels, classes, old.space,
                                                                        old.treatment)
    solve_start = time.perf_counter()
    head = solve_head(stats, cfg.head)
    solve_seconds = time.perf_counter() - solve_start
    info = parent.backbone_info
    model = TransferModel(backbone, info.feature_dim, len(classes), info.architecture,
                          feature_norm="l2" if old.space == "l2" else None)
    with torch.no_grad():
        model.head.weight.copy_(torch.from_numpy(head.weight))
        model.head.bias.copy_(torch.from_numpy(head.bias))
    probs = _softmax(head.logits(to_space(fs.features, old.space)))
    train_metrics = classification_metrics(fs.labels, probs)
    log.info("analytic %s head over %d classes from %d images' statistics (%.2fs to solve)", cfg.head, len(classes),
             int(stats.total), solve_seconds)
    history = [{"epoch": 1, "lr": "", "train_loss": train_metrics["loss"], "seconds": time.perf_counter() - start}]
    details = {**head.details, "features": old.treatment, "statistics_space": old.space,
               "images_in_statistics": int(stats.total), "solve_seconds": round(solve_seconds, 3),
               "train_feature_seconds": round(fs.seconds, 3), "train_features_from_cache": fs.from_cache}
    return StepResult(model, history, details, train_metrics, list(fs.skipped), {STATS_FILE: stats.save})


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


