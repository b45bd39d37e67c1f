"""tlearn.distill: a trained teacher run teaches a small, fast student; the student is a normal run directory.

data (+ unlabeled images) -> teacher outputs (cached, or live on each batch) -> student, and the same student
without the teacher (student_alone, on by default) -> headline metrics through the same prediction path as fit
-> distillation block (accuracy of teacher, distilled and alone, size, CPU latency, seconds of each part) -> RUN/.

Training images, unlabeled ones included, are decoded once into the decoded-image cache (a memory-mapped array
keyed by the files' contents), so epochs and later runs pay no decoding and memory does not grow with the pool.
"""
from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from ..backbones.model import BackboneInfo, TransferModel
from ..constants import ALONE_DIR
from ..data.layout import DataSplits, Sample, load_splits
from ..data.multilabel import refuse_multilabel
from ..data.unlabeled import unlabeled_samples
from ..errors import TlearnError
from ..evaluate.metrics import classification_metrics
from ..evaluate.splits import SplitResults
from ..hashing import sha256_file
from ..report import write_report_safely
from ..runs import layout
from ..runs.pipeline import Job, JobContext, JobResult, PipelineOptions, run_job
from ..runs.records import options_record, phase_record
from ..runs.run import Run
from ..runs.sections import read_sections
from ..runs.source import load_source
from ..train import Phase, TrainOptions, TrainResult, train
from .config import MIXUP_ALPHA, DistillConfig
from .hint import HintedStudent
from .loss import DistillationLoss, LabelsOnlyLoss, StoredViewLoss
from .measure import compare_costs
from .schedule import Schedule, live_teacher, settle_schedule
from .stored_views import StoredViewImages
from .teacher import Teacher, probabilities
from .views import ViewMixer, paired_view

log = logging.getLogger("tlearn")


def distill(data: str | Path, teacher: str | Path, out: str | Path, **options) -> Run:
    """Distil the teacher run into a student trained on DATA; write the student run directory OUT.

    options are DistillConfig fields (student, temperature, alpha, epochs, unlabeled, student_alone, ...).
    """
    return distill_config(DistillConfig(data=str(data), teacher=str(teacher), out=str(out), **options))


def _warn_if_teacher_saw_other_data(teacher: Teacher, splits: DataSplits) -> None:
    """The teacher must not have trained on the images the student is evaluated on."""
    if teacher.source == "model":
        return
    try:
        data = read_sections(layout.require_complete(teacher.source)).data
    except TlearnError:
        return
    if Path(data.root).resolve() != Path(splits.root).resolve() or data.val_source != splits.val_source:
        log.warning("the teacher %s was trained on %s (%s), the student on %s (%s): make sure the teacher never "
                    "saw the student's val/test images, or its accuracy and the student's are optimistic.",
                    teacher.source, data.root, data.val_source, splits.root, splits.val_source)


def _teacher_rows(teacher: Teacher, samples: list[Sample], cfg: DistillConfig, cache_dir: Path, device,
                  precision: str) -> tuple[torch.Tensor, float]:
    """(teacher logits, one row per training sample in order, seconds): zeros for files the teacher cannot read
    (the student's decoder skips those too); cached on disk."""
    fs = teacher.logits(samples, precision=precision, device=str(device), batch_size=cfg.batch_size,
                        cache_dir=cache_dir, num_workers=cfg.num_workers, progress=cfg.progress)
    log.info("teacher outputs: %d images (%d from cache) in %.1fs", len(fs.samples), fs.from_cache, fs.seconds)
    rows = torch.zeros((len(samples), len(teacher.classes)))
    position = {str(s.path): i for i, s in enumerate(samples)}
    for s, logits in zip(fs.samples, fs.features):
        rows[position[str(s.path)]] = torch.from_numpy(logits)
    return rows, fs.seconds


def train_options(cfg: DistillConfig, cache_dir: Path) -> TrainOptions:
    """The shared loop's options; label smoothing is off (the teacher's soft targets take its place)."""
    return TrainOptions(batch_size=cfg.train_batch_size, eval_batch_size=cfg.batch_size, optimizer="adamw",
                        weight_decay=cfg.weight_decay, label_smoothing=0.0, augment=cfg.augment, seed=cfg.seed,
                        precision="auto", device=cfg.device, num_workers=cfg.num_workers, cache_dir=str(cache_dir),
                        ema=cfg.ema, progress=cfg.progress, checkpoint_dir=None)


def student_phases(model: TransferModel, cfg: DistillConfig) -> list[Phase]:
    """Every layer group at one rate (the student learns from scratch or from its own weights)."""
    groups = [name for name, _ in model.layer_groups()]
    return [Phase("all", cfg.epochs, {g: cfg.lr for g in groups}, warmup_epochs=min(2.0, cfg.epochs / 5))]


def _fit_section(cfg: DistillConfig) -> dict:
    return {**cfg.to_dict(), "strategy": "distill", "backbone": cfg.student, "weights": cfg.student_weights}


def pipeline_options(cfg: DistillConfig, out: str | Path | None = None, **changes) -> PipelineOptions:
    """The pipeline's part of a distillation's options: val/test scored in fp32 without the feature cache (the
    student's and the teacher's headline figures are computed alike)."""
    options = dict(out=str(out or cfg.out), seed=cfg.seed, device=cfg.device, precision=cfg.precision,
                   cache_dir=cfg.cache_dir, batch_size=cfg.batch_size, progress=cfg.progress,
                   overwrite=cfg.overwrite, group_by=cfg.group_by, eval_precision="fp32", eval_cache=False,
                   report=write_report_safely,
                   track=cfg.track, tracking_uri=cfg.tracking_uri)
    return PipelineOptions(**{**options, **changes})


def distill_config(cfg: DistillConfig) -> Run:
    """Run a distillation described by cfg; see distill()."""
    return run_job(DistillJob(cfg), pipeline_options(cfg))


class DistillJob(Job):
    """The student trained with the teacher (and, for comparison, alone), as a job of the run pipeline."""

    strategy = "distill"
    who = "student"

    def __init__(self, cfg: DistillConfig):
        self.cfg = cfg
        self.teacher: Teacher | None = None
        self.unlabeled: list[Sample] = []

    def load(self, ctx: JobContext) -> DataSplits:
        cfg = self.cfg
        splits = load_splits(cfg.data, cfg.val_fraction, cfg.seed, cfg.group_by)
        refuse_multilabel(splits, "distill")
        self.teacher = Teacher.from_run(cfg.teacher)
        self.teacher.check_classes(splits.classes, cfg.data)
        _warn_if_teacher_saw_other_data(self.teacher, splits)
        self.unlabeled = unlabeled_samples(cfg.unlabeled, splits) if cfg.unlabeled else []
        if self.unlabeled:
            log.info("unlabeled images: %d (%s)", len(self.unlabeled), cfg.unlabeled)
        return splits

    def prepare(self, ctx: JobContext) -> BackboneInfo:
        cfg, teacher = self.cfg, self.teacher
        with ctx.timer("backbone"):
            backbone, self.info = load_source(cfg.student, cfg.student_weights, image_size=cfg.student_size,
                                              dicom_window=cfg.dicom_window)
        self.student = TransferModel(backbone, self.info.feature_dim, len(ctx.splits.classes),
                                     self.info.architecture)
        scfg = self.info.data_config
        log.info("recipe %s: teacher %s (%s, %d px) -> student %s (%s weights, %d px); T=%g, alpha=%g, %s epochs, "
                 "augment %s%s", cfg.recipe, teacher.source, teacher.model.architecture,
                 teacher.data_config.input_size, cfg.student, self.info.weights, scfg.input_size, cfg.temperature,
                 cfg.alpha, cfg.epochs or "planned", cfg.augment,
                 ", mixup on the shared view" if cfg.consistent else "")
        return self.info

    def train(self, ctx: JobContext) -> JobResult:
        cfg, teacher, splits, scfg = self.cfg, self.teacher, ctx.splits, self.info.data_config
        self.options = options = train_options(cfg, ctx.cache_dir)
        # --crops teacher: augmented crops are cut at the larger resolution, and each model gets them at its own
        # size (consistent: mixup makes every view new, so crops are paired even without other augmentation)
        paired = cfg.crops == "teacher" and (cfg.augment != "none" or cfg.consistent)
        view = paired_view(scfg, teacher.data_config) if paired else scfg
        schedule = self.schedule = settle_schedule(cfg, teacher, self.student, scfg, view, splits, self.unlabeled,
                                                   ctx.cache_dir, ctx.start, options.num_workers)
        self.alone = (_train_alone(self.student, splits, cfg, replace(options, max_seconds=schedule.alone_seconds),
                                   scfg, view) if cfg.student_alone else None)
        alone_epochs, self.alone_phases = cfg.epochs, student_phases(self.student, cfg)
        if self.alone is not None:  # calibrated by the student alone's measured time
            cfg.epochs = schedule.distill_epochs_after(self.alone.history, cfg.epochs)
        taught = self.taught = _train_with_teacher(self.student, teacher, splits, self.unlabeled, cfg,
                                                   replace(options, max_seconds=schedule.seconds_left()), scfg,
                                                   view, ctx.cache_dir, ctx.device, ctx.precision, schedule)
        self.trained_at = time.perf_counter()
        details = {"recipe": cfg.recipe, "teacher": teacher.source, "temperature": cfg.temperature,
                   "alpha": cfg.alpha, "mixup": MIXUP_ALPHA if cfg.consistent else None,
                   "feature_weight": cfg.feature_weight, "augment": cfg.augment,
                   "teacher_outputs": taught.teacher_outputs, "crops": cfg.crops, "crop_px": view.input_size,
                   "unlabeled_images": len(self.unlabeled), "phases": phase_record(taught.phases),
                   "train_options": options_record(options), "best_epoch": taught.result.best_epoch,
                   "stopped": taught.result.stopped, "views": cfg.views or 0, "alone_epochs": alone_epochs,
                   "budget": schedule.plan.to_dict() if schedule.plan else None}
        teacher_record = {"teacher": {"run": teacher.source, "architecture": teacher.model.architecture,
                                      "data_config": teacher.data_config.to_dict(),
                                      "model_sha256": _teacher_sha(teacher)}}
        return JobResult(model=taught.model, history=taught.result.history, details=details,
                         skipped=list(taught.result.skipped), sections=teacher_record,
                         train_seconds=taught.result.seconds)

    def after_evaluation(self, ctx: JobContext, result: JobResult, evaluated: SplitResults) -> None:
        """The student alone written as its own run inside the student's; then the distillation block."""
        cfg, alone, taught = self.cfg, self.alone, self.taught
        alone_metrics = {}
        if alone is not None:  # a complete run of its own, inside the student's, written before the student's
            alone_run = run_job(_AloneJob(ctx.splits, self.info, alone, cfg, self.options, self.alone_phases),
                                pipeline_options(cfg, ctx.out / ALONE_DIR, overwrite=True, check_leakage=False,
                                                 report=None))
            alone_metrics = alone_run.metrics
        block = _distillation_block(cfg, self.teacher, result.model, self.info.data_config, ctx.splits,
                                    evaluated.metrics, alone_metrics, len(self.unlabeled), ctx.cache_dir, ctx.device,
                                    ctx.precision)
        # what each part cost, so a user can weigh the gain against it (the latency figures are in the block too)
        schedule = self.schedule
        block["seconds"] = {"decode_unlabeled": round(schedule.decode_seconds, 3),
                            "teacher_outputs": round(taught.teacher_seconds, 3),
                            "teacher_views": round(schedule.views.seconds, 3) if schedule.views else None,
                            "distill_train": round(taught.result.seconds, 3),
                            "alone_train": round(alone.seconds, 3) if alone else None,
                            "evaluate_and_latency": round(time.perf_counter() - self.trained_at, 3),
                            "total": round(time.perf_counter() - ctx.start, 3)}
        if schedule.views is not None:
            views = schedule.views
            block["stored_views"] = {"views": views.k, "images": len(views.boxes), "from_cache": views.from_cache,
                                     "precision": views.precision, "seconds_computing": views.checks.get(
                                         "views_seconds"), **{k: v for k, v in views.checks.items()
                                                              if k != "views_seconds"}}
        if schedule.plan is not None:
            block["budget"] = {**schedule.plan.to_dict(), "total_seconds": block["seconds"]["total"],
                               "stopped": taught.result.stopped,
                               "alone_stopped": alone.stopped if alone is not None else None}
        result.metrics.update(params=block["student_params"], distillation=block)
        log.info("%s accuracy: teacher %.4f, distilled student %.4f%s; student %.1fx faster at batch 1 (%.2f vs "
                 "%.2f ms)", block["split"], block["teacher_accuracy"], block["student_accuracy"],
                 "" if alone is None else f", student alone {block['student_alone_accuracy']:.4f}",
                 block["speedup_batch1"], block["student_ms_batch1"], block["teacher_ms_batch1"])

    def fit_section(self) -> dict:
        return _fit_section(self.cfg)


class _AloneJob(Job):
    """The student trained without the teacher, alongside the distilled one: written as its own run."""

    strategy = "student-alone"
    who = "student alone"

    def __init__(self, splits: DataSplits, info: BackboneInfo, alone: TrainResult, cfg: DistillConfig,
                 options: TrainOptions, phases: list[Phase]):
        self.splits, self.info, self.alone, self.cfg, self.options = splits, info, alone, cfg, options
        self.phases = phases  # the student alone's (a budget may give the distilled student fewer epochs)

    def load(self, ctx: JobContext) -> DataSplits:
        return self.splits

    def prepare(self, ctx: JobContext) -> BackboneInfo:
        return self.info

    def train(self, ctx: JobContext) -> JobResult:
        alone = self.alone
        details = {"phases": phase_record(self.phases),
                   "train_options": options_record(self.options), "best_epoch": alone.best_epoch,
                   "note": "same student, labelled data, epochs and initial weights as the distilled student; "
                           "cross-entropy on the labels only"}
        return JobResult(model=alone.model, history=alone.history, details=details, skipped=list(alone.skipped),
                         train_seconds=alone.seconds)

    def fit_section(self) -> dict:
        return _fit_section(self.cfg)


def _train_alone(student: TransferModel, splits: DataSplits, cfg: DistillConfig, options: TrainOptions, scfg,
                 view) -> TrainResult:
    """The same student (a copy of its initial weights), labelled data, phases and options; only the loss lacks
    the teacher."""
    log.info("training the student alone (no teacher) for comparison")
    alone_model = copy.deepcopy(student)
    mixer = ViewMixer(MIXUP_ALPHA, cfg.seed) if cfg.consistent else None
    loss = LabelsOnlyLoss(scfg, view, mixer=mixer, num_classes=len(splits.classes))
    return train(alone_model, student_phases(alone_model, cfg), splits.train, splits.val, scfg, options,
                 num_classes=len(splits.classes), loss=loss, train_view=view)


@dataclass
class _Taught:
    model: TransferModel  # the distilled student, without a hint's projection
    result: TrainResult
    phases: list[Phase]
    teacher_outputs: str  # how the teacher's outputs were obtained, for config.yaml
    teacher_seconds: float = 0.0  # computing (or reading) the cached teacher outputs; live ones count in training


def _train_with_teacher(student: TransferModel, teacher: Teacher, splits: DataSplits, unlabeled: list[Sample],
                        cfg: DistillConfig, options: TrainOptions, scfg, view, cache_dir: Path, device,
                        precision: str, schedule: Schedule) -> _Taught:
    train_samples = list(splits.train) + unlabeled
    mixer = ViewMixer(MIXUP_ALPHA, cfg.seed) if cfg.consistent else None
    trained = HintedStudent(student, teacher.model.head.in_features) if cfg.feature_weight else student
    phases = student_phases(trained, cfg)  # with a hint: the projection's group too
    if schedule.views is not None:  # the student re-crops each stored view; no teacher runs while it trains
        views = schedule.views
        teacher_outputs = f"stored, {views.k} view(s) per image" + (", mixed" if mixer is not None else "")
        log.info("training the student on the teacher's stored views (%d per image%s)", views.k,
                 ", mixed up" if mixer is not None else "")
        loss = StoredViewLoss(views.targets(), cfg.temperature, cfg.alpha, mixer=mixer)
        result = train(trained, phases, train_samples, splits.val, scfg, options, loss=loss,
                       num_classes=len(splits.classes), train_view=view,
                       train_images=lambda decoded: StoredViewImages(decoded, views, scfg, cfg.seed))
        return _Taught(model=result.model, result=result, phases=phases, teacher_outputs=teacher_outputs)
    # teacher outputs cached unless batches are augmented, mixed or hinted; mirrors reuse them
    # (docs/results.md#distillation)
    live = live_teacher(cfg)
    teacher_logits, teacher_seconds = (None, 0.0) if live else _teacher_rows(teacher, train_samples, cfg, cache_dir,
                                                                             device, precision)
    kd = DistillationLoss(teacher.model, scfg, teacher.data_config, cfg.temperature, cfg.alpha,
                          cached=teacher_logits, live=live, teacher_precision=precision, view=view,
                          feature_weight=cfg.feature_weight, mixer=mixer)
    teacher_outputs = ("live, on each mixed view" if mixer is not None else "live, on each batch" if kd.live
                       else "cached, un-augmented" + (" (reused for mirrors)" if cfg.augment == "flip" else ""))
    log.info("training the student with the teacher (teacher outputs %s; crops cut at %d px%s)",
             teacher_outputs, view.input_size,
             f"; feature hint weight {cfg.feature_weight:g}" if cfg.feature_weight else "")
    # with a feature hint the student trains with a projection to the teacher's features, saved without it
    result = train(trained, phases, train_samples, splits.val, scfg, options, loss=kd,
                   num_classes=len(splits.classes), train_view=view)
    model = result.model.plain() if cfg.feature_weight else result.model
    return _Taught(model=model, result=result, phases=phases, teacher_outputs=teacher_outputs,
                   teacher_seconds=teacher_seconds)


def _distillation_block(cfg: DistillConfig, teacher: Teacher, student: TransferModel, scfg, splits: DataSplits,
                        metrics: dict, alone_metrics: dict, n_unlabeled: int, cache_dir: Path, device,
                        precision: str) -> dict:
    """metrics.json's distillation block: teacher vs student (vs student alone) accuracy, size and CPU latency."""
    block_split = "val" if "val" in metrics else "test"
    teacher_metrics = {}
    for split in ("val", "test"):
        if splits.split(split):
            fs = teacher.logits(splits.split(split), precision=precision, device=str(device),
                                batch_size=cfg.batch_size, cache_dir=cache_dir, progress=cfg.progress)
            teacher_metrics[split] = classification_metrics(fs.labels, probabilities(fs.features))
    block = {"split": block_split,
             "teacher_accuracy": teacher_metrics[block_split]["accuracy"],
             "student_accuracy": metrics[block_split]["accuracy"],
             "student_alone_accuracy": None}
    if alone_metrics:
        block["student_alone_accuracy"] = alone_metrics[block_split]["accuracy"]
        block["gain_points"] = round(100 * (block["student_accuracy"] - block["student_alone_accuracy"]), 2)
    log.info("measuring CPU latency (%d thread(s), median of %d runs after warm-up)", cfg.latency_threads,
             cfg.latency_repeats)
    costs = compare_costs({"teacher": (teacher.model, teacher.data_config.input_size),
                           "student": (student, scfg.input_size)},
                          repeats=cfg.latency_repeats, threads=cfg.latency_threads)
    for who in ("teacher", "student"):
        for key, value in costs[who].items():
            block[f"{who}_{key}"] = value
    block["speedup_batch1"] = round(block["teacher_ms_batch1"] / block["student_ms_batch1"], 2)
    block["speedup_batch32"] = round(block["teacher_ms_batch32"] / block["student_ms_batch32"], 2)
    block.update(latency_threads=cfg.latency_threads, latency_repeats=cfg.latency_repeats,
                 teacher_input_size=teacher.data_config.input_size, student_input_size=scfg.input_size,
                 unlabeled_images=n_unlabeled, recipe=cfg.recipe, student=cfg.student,
                 student_weights=cfg.student_weights, temperature=cfg.temperature, alpha=cfg.alpha,
                 feature_weight=cfg.feature_weight, epochs=cfg.epochs, augment=cfg.augment, crops=cfg.crops)
    for split in ("val", "test"):
        if split != block_split and split in metrics:
            alone_accuracy = alone_metrics.get(split, {}).get("accuracy")
            block[split] = {"teacher_accuracy": teacher_metrics[split]["accuracy"],
                            "student_accuracy": metrics[split]["accuracy"],
                            "student_alone_accuracy": alone_accuracy}
            if alone_accuracy is not None:
                block[split]["gain_points"] = round(100 * (metrics[split]["accuracy"] - alone_accuracy), 2)
    return block


def _teacher_sha(teacher: Teacher) -> str | None:
    path = Path(teacher.source) / layout.MODEL
    return sha256_file(path) if path.is_file() else None


__all__ = ["distill", "distill_config", "unlabeled_samples", "ALONE_DIR"]
