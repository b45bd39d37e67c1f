"""The run pipeline: every job that writes a run (fit with any strategy, distill and its student-alone run,
extend, the incremental protocol's steps, study cells) goes through run_job.

It lives with the run directory it writes, below the jobs that use it (tlearn.fitting, tlearn.distill,
tlearn.incremental); the report, a layer above, is handed in (PipelineOptions.report) and written last.

A job supplies what is its own: its splits, its backbone, its training and its config.yaml / metrics.json
sections. The pipeline does the rest, once, in one order:

  settle device, precision, cache and seed -> load the splits (job) -> groups and leakage checks -> prepare (job:
  backbone, features) -> RunWriter.start -> train (job) -> evaluate val/test -> metrics (train/total seconds,
  skipped files, parameters, leakage, groups, phase seconds) -> resolved config.yaml -> RunWriter.finish -> report

with the run's trackers (PipelineOptions.track: MLflow, TensorBoard; PipelineOptions.callbacks: a user's own) told
of its start, of
every epoch (live where the job's loop reports them, else replayed from its history) and of its end or failure.

and times its phases into metrics.json's phase_seconds. The report is written after the run is complete, so a
report failure never loses a run.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..backbones.model import BackboneInfo, TransferModel
from ..backbones.registry import count_parameters
from ..data.groups import groups_record, shared_groups, shared_groups_text
from ..data.layout import SPLITS, DataSplits
from ..data.leakage import check_leakage, log_leakage
from ..evaluate.without_copies import figures_without_copies
from ..device import settle_runtime
from ..errors import DataError
from ..evaluate.splits import SplitResults, evaluate_splits
from . import layout
from .run import Run
from .writer import RunWriter, run_config, run_inputs
from ..tracking import Tracking, callbacks_for
from ..train.distributed import dist_env

log = logging.getLogger("tlearn")


class PhaseTimer:
    """Seconds spent in each named phase of a run (a phase entered twice adds up)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = round(self.seconds.get(name, 0.0) + time.perf_counter() - start, 3)

    def summary(self) -> str:
        return ", ".join(f"{name} {s:.1f}s" for name, s in self.seconds.items())


@dataclass
class PipelineOptions:
    """What the pipeline needs of any job's options (each job fills it from its own config)."""

    out: str
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"
    cache_dir: str | None = None
    batch_size: int = 64  # evaluation batch
    progress: bool = True
    overwrite: bool = False
    resume: bool = False
    strict: bool = False  # a group (patient) in two splits is refused instead of warned about
    group_by: str | None = None
    check_leakage: bool = True
    eval_precision: str | None = None  # None: the run's resolved precision
    eval_cache: bool = True  # val/test features through the feature cache
    report: Callable[[Path], object] | None = None  # writes RUN/report.html, never raising (report.write_report_safely)
    track: str | None = None  # --track: the trackers (tlearn.tracking.callbacks_for), logging beside OUT
    tracking_uri: str | None = None  # --tracking-uri
    callbacks: list = field(default_factory=list)  # the caller's own (on_run_start/epoch_end/run_end)


@dataclass
class JobContext:
    """What the pipeline settled, handed to each step of a job."""

    options: PipelineOptions
    device: torch.device
    precision: str
    cache_dir: Path
    out: Path
    is_main: bool
    timer: PhaseTimer
    start: float
    splits: DataSplits | None = None
    tracking: Tracking = field(default_factory=Tracking)  # the run's trackers; jobs report epochs to it


@dataclass
class JobResult:
    """What a job's training gives the pipeline."""

    model: TransferModel
    history: list[dict] = field(default_factory=list)  # rows of history.csv
    details: dict = field(default_factory=dict)  # config.yaml's strategy section (after its name)
    train_metrics: dict | None = None
    skipped: list = field(default_factory=list)  # files skipped while training
    files: dict[str, Callable[[Path], None]] = field(default_factory=dict)  # more run files: name -> write(path)
    out_of_fold: tuple | None = None  # multi-label probe without val: (train samples, out-of-fold probabilities)
    backbone_info: BackboneInfo | None = None  # when training chose another data config (auto)
    sections: dict = field(default_factory=dict)  # more config.yaml sections (rank, teacher, extend, lineage)
    metrics: dict = field(default_factory=dict)  # more metrics.json entries (distillation, lineage, ...)
    train_seconds: float | None = None  # None: from the start of the run to the end of training


class Job:
    """One kind of run. Subclasses set `strategy` (run.json's and config.yaml's strategy name) and implement
    load, prepare, train and fit_section; after_evaluation is optional."""

    strategy: str = ""
    who: str = ""  # how the evaluation's log lines name the model

    def load(self, ctx: JobContext) -> DataSplits:
        """The run's splits (train, val, test)."""
        raise NotImplementedError

    def prepare(self, ctx: JobContext) -> BackboneInfo | None:
        """Backbone, checks and shared features before the run starts; None: this torchrun process stops here."""
        raise NotImplementedError

    def train(self, ctx: JobContext) -> JobResult:
        raise NotImplementedError

    def fit_section(self) -> dict:
        """config.yaml's fit section: the options the run was trained with."""
        raise NotImplementedError

    def after_evaluation(self, ctx: JobContext, result: JobResult, evaluated: SplitResults) -> None:
        """Sections and metrics that need the val/test results (add them to result.sections / result.metrics)."""


def run_job(job: Job, options: PipelineOptions) -> Run | None:
    """Run the job and write its run directory; None in a torchrun process other than rank 0."""
    start = time.perf_counter()
    timer = PhaseTimer()
    is_main = dist_env().is_main
    writer = RunWriter(options.out, overwrite=options.overwrite, resume=options.resume, is_main=is_main)
    torch.manual_seed(options.seed)
    device, precision, cache_dir = settle_runtime(options.device, options.precision, options.cache_dir)
    ctx = JobContext(options=options, device=device, precision=precision, cache_dir=cache_dir, out=writer.out,
                     is_main=is_main, timer=timer, start=start)
    # the trackers are built first: a missing package is refused before any work
    tracking = ctx.tracking = Tracking(
        [*callbacks_for(options.track, writer.out, options.tracking_uri), *options.callbacks] if is_main else ())
    with timer("load"):
        splits = ctx.splits = job.load(ctx)
    log.info("data %s: %d classes; train %d, val %d (%s), test %d", splits.root, len(splits.classes),
             len(splits.train), len(splits.val), splits.val_source, len(splits.test))
    groups = check_groups(splits, options.strict, options.group_by)
    leakage = None
    if is_main and options.check_leakage:  # before training: loud, early
        with timer("leakage_check"):
            leakage = check_leakage(splits, cache_dir)
        log_leakage(leakage)
    info = job.prepare(ctx)
    if info is None:
        return None
    # a wrong tracking URI stops here, before OUT is touched
    tracking.on_run_start({"strategy": job.strategy, "out": str(writer.out), "fit": job.fit_section(),
                           "backbone": info.to_dict()})
    try:
        writer.start(run_inputs(info, splits, job.strategy))  # only once the inputs are known to be usable
        return _train_and_write(job, ctx, writer, info, leakage, groups)
    except BaseException as exc:
        tracking.on_run_failed(exc)
        raise


def _train_and_write(job: Job, ctx: JobContext, writer: RunWriter, info: BackboneInfo, leakage,
                     groups: dict | None) -> Run | None:
    """run_job from training on: train, evaluate, write the run and its report, tell the trackers."""
    options, timer, splits, device, precision = ctx.options, ctx.timer, ctx.splits, ctx.device, ctx.precision
    with timer("training"):
        result = job.train(ctx)
    if not ctx.is_main:  # under torchrun only rank 0 evaluates and writes the run directory
        return None
    for row in result.history:  # jobs without a live epoch report (the probe); rows already sent are skipped
        ctx.tracking.on_epoch_end(row)
    info = result.backbone_info or info
    train_seconds = time.perf_counter() - ctx.start if result.train_seconds is None else result.train_seconds
    model = result.model.eval()
    with timer("evaluation"):
        evaluated = evaluate_splits(model, splits, info.data_config, precision=options.eval_precision or precision,
                                    device=str(device), batch_size=options.batch_size,
                                    cache_dir=ctx.cache_dir if options.eval_cache else None,
                                    use_cache=options.eval_cache, progress=options.progress, who=job.who,
                                    out_of_fold=result.out_of_fold)
        job.after_evaluation(ctx, result, evaluated)
    metrics = run_metrics(splits, result, evaluated, model, train_seconds, ctx.start, leakage, groups)
    metrics["phase_seconds"] = dict(timer.seconds)
    sections = {"fit": job.fit_section(), "strategy": {"name": job.strategy, **result.details}, **result.sections}
    if evaluated.task is not None:  # what evaluate, predict, export and serve need to score a multi-label run
        sections["task"] = evaluated.task
    config = run_config(sections, info, splits, options.eval_precision or precision, str(device))
    run = writer.finish(model, splits.classes, config, result.history, metrics, evaluated.predictions,
                        extra_files=result.files)
    log.info("run written to %s (%.1fs)", run.path, metrics["total_seconds"])
    if options.report is not None:
        with timer("report"):
            options.report(run.path)
        metrics["phase_seconds"] = dict(timer.seconds)
        layout.write_json(run.path / layout.METRICS, metrics)  # the run is complete: only the report time is new
    log.info("phases: %s", timer.summary())
    ctx.tracking.on_run_end(run.path, metrics)
    return run


def run_metrics(splits: DataSplits, result: JobResult, evaluated: SplitResults, model: TransferModel,
                train_seconds: float, start: float, leakage, groups: dict | None) -> dict:
    """metrics.json: train and val/test metrics, seconds, skipped files, parameters, the job's own entries,
    leakage and groups."""
    metrics = {"train": result.train_metrics} if result.train_metrics else {}
    metrics.update(evaluated.metrics)
    skipped = list(splits.skipped) + list(result.skipped) + list(evaluated.skipped)
    if result.history and "val" in metrics and "val_accuracy" not in result.history[-1]:
        result.history[-1].update(val_loss=metrics["val"]["loss"], val_accuracy=metrics["val"]["accuracy"])
    metrics.update(train_seconds=round(train_seconds, 3), total_seconds=round(time.perf_counter() - start, 3),
                   skipped=[s.to_dict() for s in skipped], params=count_parameters(model))
    metrics.update(result.metrics)
    if leakage is not None:  # and each held-out figure again on the images with no copy in train
        metrics["leakage"] = leakage.to_dict()
        metrics["leakage"]["without_copies"] = figures_without_copies(evaluated.predictions,
                                                                      leakage.copied_from_train)
    if groups is not None:
        metrics["groups"] = groups
    if skipped:
        log.warning("skipped %d unreadable or non-image file(s):\n%s", len(skipped),
                    "\n".join(f"  {s.path}: {s.reason}" for s in skipped))
    return metrics


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
