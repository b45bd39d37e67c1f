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

from ..backbones.model import BackboneInfo, TransferModel
from ..data.layout import DataSplits, Sample, load_splits
from ..data.multilabel import refuse_multilabel
from ..errors import DataError, TlearnError
from ..evaluate.metrics import classification_metrics
from ..evaluate.splits import SplitResults
from ..features.extract import extract_features
from ..features.statistics import STATS_FILE, FeatureStatistics, to_space
from ..report import write_report_safely
from ..runs.pipeline import Job, JobContext, JobResult, PipelineOptions, run_job
from ..runs.run import Run
from .analytic import solve_head
from .config import ExtendConfig
from .lineage import (added_classes, lineage_splits, parent_lineage, parent_strategy, remap, repeated_images,
                      union)
from .replay import read_exemplars
from .step import StepResult

log = logging.getLogger("tlearn")

ANALYTIC_PARENTS = ("linear-probe", "analytic")  # runs whose backbone is the frozen pretrained one


def default_method(parent: Run) -> str:
    return "analytic" if parent_strategy(parent) in ANALYTIC_PARENTS else "lwf"


def extend(run: str | Path, data: str | Path, out: str | Path, **options) -> Run:
    """Extend the run RUN with NEWDATA into OUT; options are ExtendConfig fields (method, head, replay, ...)."""
    return extend_config(ExtendConfig(run=str(run), data=str(data), out=str(out), **options))


def extend_config(cfg: ExtendConfig) -> Run:
    """Run the extension cfg describes; see extend()."""
    job = ExtendJob(cfg)
    fit = job.parent.sections.fit
    options = PipelineOptions(out=cfg.out, seed=job.seed, device=cfg.device or fit.device,
                              precision=job.parent.sections.precision, cache_dir=cfg.cache_dir or fit.cache_dir,
                              batch_size=fit.batch_size, progress=cfg.progress, overwrite=cfg.overwrite,
                              group_by=fit.group_by, strict=cfg.strict, report=write_report_safely,
                              track=cfg.track, tracking_uri=cfg.tracking_uri)
    return run_job(job, options)


class ExtendJob(Job):
    """RUN2 from RUN and NEWDATA: the parent's classes then the new ones, evaluated on the val/test of every data
    folder in its lineage."""

    def __init__(self, cfg: ExtendConfig):
        self.cfg = cfg
        self.parent = parent = Run(cfg.run)
        if Path(cfg.out).resolve() == parent.path.resolve():
            raise TlearnError(f"--out {cfg.out} is the run being extended; write the extension to a new folder (the "
                              "parent is never overwritten).")
        if parent.multilabel:
            raise TlearnError(f"{parent.path} is a multi-label run; tlearn extend handles single-label runs only.")
        self.strategy = self.method = cfg.method or default_method(parent)
        self.stats = check_analytic_parent(parent) if self.method == "analytic" else None
        fit = parent.sections.fit
        self.seed = fit.seed if cfg.seed is None else cfg.seed
        self.val_fraction = fit.val_fraction if cfg.val_fraction is None else cfg.val_fraction
        self.fit = {**fit.values, "seed": self.seed, "val_fraction": self.val_fraction}  # config.yaml's fit

    def load(self, ctx: JobContext) -> DataSplits:
        cfg, parent, method = self.cfg, self.parent, self.method
        new = load_splits(cfg.data, self.val_fraction, self.seed, parent.sections.fit.group_by,
                          min_classes=1)  # the parent's patients rule
        refuse_multilabel(new, "tlearn extend")
        added = self.added = added_classes(parent.classes, new.classes, cfg.data)
        classes = self.classes = list(parent.classes) + added
        new_train = self.new_train = remap(new.train, new.classes, classes)
        log.info("extend %s (%s) with %s by %s: %d new class(es) %s, %d train images", parent.path,
                 parent_strategy(parent), new.root, method, len(added), added, len(new_train))
        step = self.step = {
            "step": None, "run": str(Path(cfg.out).resolve()), "parent": str(parent.path), "method": method,
            "data": new.root, "val_fraction": self.val_fraction, "seed": self.seed,
            "group_by": parent.sections.fit.group_by, "classes_added": added,
            "images_added": {c: sum(1 for s in new_train if classes[s.label] == c) for c in new.classes}}
        lineage = self.lineage = parent_lineage(parent)
        step["step"] = len(lineage)
        lineage.append(step)
        self.parts, self.gone = lineage_splits(lineage, classes)
        held = self.parts[:-1] if self.parts and self.parts[-1].root == new.root else self.parts  # the parent's
        self._check_repeats(new_train, held)
        # the parent's exemplars, checked before OUT is touched
        self.kept = read_exemplars(parent.path, parent.classes, [s.get("data") for s in lineage[:-1]], held) \
            if cfg.replay and method != "analytic" else None
        return DataSplits(new.root, classes, new_train, union([p.val for p in self.parts]),
                          union([p.test for p in self.parts]), "the val/test of every data folder in the lineage",
                          list(new.skipped))

    def _check_repeats(self, new_train: list[Sample], held: list[DataSplits]) -> None:
        """NEWDATA's train images that the run already holds (by content) would count twice: warned about, or
        refused with --strict."""
        repeats = repeated_images(new_train, held)
        if not repeats:
            return
        n = len({s.path for found in repeats.values() for s in found})
        where = ", ".join(f"{len(found)} in its {split} data" for split, found in repeats.items())
        example = next(iter(repeats.values()))[0].path
        message = (f"{n} of the {len(new_train)} train images of {self.cfg.data} are already held by the run "
                   f"{self.parent.path} ({where}; by content, e.g. {example}): they would count twice")
        if self.cfg.strict:
            raise DataError(f"{message}. Remove them from {self.cfg.data}, or leave out --strict to go on with a "
                            "warning.")
        log.warning("%s; remove them from %s (--strict refuses such data).", message, self.cfg.data)

    def prepare(self, ctx: JobContext) -> BackboneInfo:
        return self.parent.backbone_info

    def train(self, ctx: JobContext) -> JobResult:
        cfg, parent, method = self.cfg, self.parent, self.method
        if method == "analytic":
            result = _analytic(parent, self.stats, self.new_train, self.classes, cfg, ctx.precision, ctx.device,
                               ctx.cache_dir)
        else:
            from .finetuned import extend_finetuned  # imports the training loop

            result = extend_finetuned(parent, self.new_train, self.classes, self.added, self.parts, self.lineage,
                                      cfg, method, self.seed, ctx.precision, ctx.device, ctx.cache_dir, self.kept)
        self.step["seconds"] = round(time.perf_counter() - ctx.start, 3)
        sections = {"extend": {**cfg.to_dict(), "method": method, "parent": str(parent.path)},
                    "lineage": self.lineage}
        return JobResult(model=result.model, history=result.history, details=result.details,
                         train_metrics=result.train_metrics, skipped=list(result.skipped), files=result.files,
                         sections=sections)

    def after_evaluation(self, ctx: JobContext, result: JobResult, evaluated: SplitResults) -> None:
        result.metrics.update(
            peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            lineage=[{k: s.get(k) for k in ("step", "method", "data", "classes_added", "images_added",
                                            "train_images", "seconds") if k in s} for s in self.lineage],
            evaluated_on={"data": [p.root for p in self.parts], "gone": self.gone})
        if self.gone:
            log.warning("val/test of %s left out of the metrics: the folder is gone or changed", ", ".join(self.gone))

    def fit_section(self) -> dict:
        return self.fit


def check_analytic_parent(parent: Run) -> FeatureStatistics:
    """The parent's head statistics, checked (before OUT is touched) to be usable and to match its classes and
    backbone."""
    strategy = parent_strategy(parent)
    if strategy not in ANALYTIC_PARENTS:
        raise TlearnError(f"--method analytic needs a run whose backbone stayed frozen (a linear-probe run or its "
                          f"analytic extension); {parent.path} was trained with {strategy!r}. Use --method lwf "
                          "(or naive) for a fine-tuned run.")
    if not (parent.path / STATS_FILE).is_file():
        data = parent.sections.data.root
        raise TlearnError(f"{parent.path / STATS_FILE} is missing: {parent.path} was fitted by a tlearn that did not "
                          f"keep the linear probe's feature statistics. Fit it again (`tlearn fit {data} --out NEWRUN`;"
                          " its features come from the cache) and extend the new run.")
    stats = FeatureStatistics.load(parent.path / STATS_FILE)
    if stats.classes != parent.classes or stats.dim != parent.backbone_info.feature_dim:
        raise TlearnError(f"{parent.path / STATS_FILE} does not match the run's classes.json or backbone; the run "
                          "folder was edited. Extend an intact run.")
    return stats


def _analytic(parent: Run, old: FeatureStatistics, train: list[Sample], classes: list[str], cfg: ExtendConfig,
              precision: str, device, cache_dir: Path) -> StepResult:
    start = time.perf_counter()
    backbone = parent.model.backbone
    fs = extract_features(backbone, train, parent.data_config, precision=precision, device=device,
                          batch_size=parent.sections.fit.batch_size, cache_dir=cache_dir,
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


