"""tlearn.distill: a trained teacher run teaches a small, fast student; the student is a normal run directory.

data -> teacher outputs (cached) -> student (and, with student_alone, the same student without teacher)
-> headline metrics through the same prediction path as fit -> distillation block (accuracy, size,
CPU latency) -> RUN/.
"""
from __future__ import annotations

import copy
import json
import logging
import time
from datetime import datetime, timezone
from pathlib import Path

import torch
import yaml

from ..backbones.model import BackboneInfo, TransferModel, load_backbone
from ..config import library_versions
from ..data.augment import PRESETS as AUGMENT_PRESETS
from ..data.layout import DataSplits, Sample, list_images, load_splits
from ..errors import TlearnError
from ..evaluate.metrics import classification_metrics
from ..evaluate.predict import predict_samples
from ..hashing import sha256_file
from ..run import Run, atomic_write_text, prepare_run, save_model, write_history, write_json, write_predictions
from ..train import Phase, TrainOptions, TrainResult, train
from ..train.ema import check_decay
from .config import DistillConfig
from .hint import HintedStudent
from .loss import DistillationLoss, LabelsOnlyLoss, check_alpha, check_feature_weight, check_temperature
from .measure import compare_costs
from .teacher import Teacher, probabilities
from .views import paired_view

log = logging.getLogger("tlearn")

ALONE_DIR = "student-alone"  # RUN/student-alone/: the same student trained without the teacher
CACHED_PRESETS = ("none", "flip")  # augmentation under which the teacher's outputs are computed once, up front


def distill(data: str | Path, teacher: str | Path, out: str | Path, **options) -> Run:
    """Distil the teacher run into a student trained on DATA; write the student run directory OUT.

    options are DistillConfig fields (student, temperature, alpha, epochs, unlabeled, student_alone, ...).
    """
    return distill_config(DistillConfig(data=str(data), teacher=str(teacher), out=str(out), **options))


def _validate(cfg: DistillConfig) -> None:
    try:
        check_temperature(cfg.temperature)
        check_alpha(cfg.alpha)
        check_feature_weight(cfg.feature_weight)
        if cfg.ema is not None:
            check_decay(cfg.ema)
    except ValueError as exc:
        raise TlearnError(str(exc)) from None
    if cfg.augment not in AUGMENT_PRESETS:
        raise TlearnError(f"--augment must be one of {', '.join(AUGMENT_PRESETS)}, not {cfg.augment!r}.")
    if cfg.augment == "strong" and cfg.unlabeled:
        raise TlearnError("--augment strong mixes labels (mixup/cutmix) and cannot be used with --unlabeled; "
                          "use light or medium.")
    if cfg.crops not in ("student", "teacher"):
        raise TlearnError(f"--crops must be student or teacher, not {cfg.crops!r}.")
    if cfg.epochs < 1:
        raise TlearnError(f"--epochs must be at least 1, not {cfg.epochs}.")
    if cfg.student_size is not None and cfg.student_size < 8:
        raise TlearnError(f"--student-size must be at least 8 px, not {cfg.student_size}.")


def _warn_if_teacher_saw_other_data(teacher: Teacher, splits: DataSplits) -> None:
    """The teacher must not have trained on the images the student is evaluated on."""
    try:
        tconf = Run(teacher.source).config if teacher.source != "model" else {}
    except TlearnError:
        return
    tdata = tconf.get("data", {})
    if tdata and (Path(tdata.get("root", "")).resolve() != Path(splits.root).resolve()
                  or tdata.get("val_source") != splits.val_source):
        log.warning("the teacher %s was trained on %s (%s), the student on %s (%s): make sure the teacher never "
                    "saw the student's val/test images, or its accuracy and the student's are optimistic.",
                    teacher.source, tdata.get("root"), tdata.get("val_source"), splits.root, splits.val_source)


def unlabeled_samples(folder: str | Path, splits: DataSplits) -> list[Sample]:
    """Images of FOLDER (recursive) as label -1; refuses images that are also val/test images (leakage)."""
    paths = list_images(folder)
    held_out = {sha256_file(s.path) for s in splits.val + splits.test}
    leaked = [p for p in paths if sha256_file(p) in held_out]
    if leaked:
        raise TlearnError(
            f"--unlabeled {folder}: {len(leaked)} image(s) are also val/test images of {splits.root} "
            f"(e.g. {leaked[0]}); training on them, even without labels, would leak the evaluation images. "
            "Use images outside the evaluation splits."
        )
    return [Sample(p, -1) for p in paths]


def _teacher_rows(teacher: Teacher, samples: list[Sample], cfg: DistillConfig, cache_dir: Path, device,
                  precision: str) -> torch.Tensor:
    """Teacher logits, one row per training sample in order (zeros for files the teacher cannot read:
    the student's decoder skips those too); cached on disk."""
    fs = teacher.logits(samples, precision=precision, device=str(device), batch_size=cfg.batch_size,
                        cache_dir=cache_dir, num_workers=cfg.num_workers, progress=cfg.progress)
    log.info("teacher outputs: %d images (%d from cache) in %.1fs", len(fs.samples), fs.from_cache, fs.seconds)
    rows = torch.zeros((len(samples), len(teacher.classes)))
    position = {str(s.path): i for i, s in enumerate(samples)}
    for s, logits in zip(fs.samples, fs.features):
        rows[position[str(s.path)]] = torch.from_numpy(logits)
    return rows


def train_options(cfg: DistillConfig, cache_dir: Path) -> TrainOptions:
    """The shared loop's options; label smoothing is off (the teacher's soft targets take its place)."""
    return TrainOptions(batch_size=cfg.train_batch_size, eval_batch_size=cfg.batch_size, optimizer="adamw",
                        weight_decay=cfg.weight_decay, label_smoothing=0.0, augment=cfg.augment, seed=cfg.seed,
                        precision="auto", device=cfg.device, num_workers=cfg.num_workers, cache_dir=str(cache_dir),
                        ema=cfg.ema, progress=cfg.progress, checkpoint_dir=None, tensorboard=False)


def student_phases(model: TransferModel, cfg: DistillConfig) -> list[Phase]:
    """Every layer group at one rate (the student learns from scratch or from its own weights)."""
    groups = [name for name, _ in model.layer_groups()]
    return [Phase("all", cfg.epochs, {g: cfg.lr for g in groups}, warmup_epochs=min(2.0, cfg.epochs / 5))]


def _headline_metrics(model: TransferModel, info: BackboneInfo, splits: DataSplits, cfg: DistillConfig, device,
                      out: Path | None) -> tuple[dict, list]:
    """val/test metrics through predict_samples, exactly as fit computes them."""
    metrics, skipped = {}, []
    for split in ("val", "test"):
        samples = splits.split(split)
        if not samples:
            continue
        probs, fs = predict_samples(model, samples, info.data_config, precision="fp32", device=str(device),
                                    batch_size=cfg.batch_size, use_cache=False, progress=cfg.progress,
                                    desc=f"{split} student")
        skipped += fs.skipped
        metrics[split] = classification_metrics(fs.labels, probs)
        if out is not None:
            write_predictions(out / "predictions" / f"{split}.csv", fs.samples, probs, splits.classes)
    return metrics, skipped


def _write_run(out: Path, model: TransferModel, info: BackboneInfo, splits: DataSplits, cfg: DistillConfig,
               metrics: dict, history: list[dict], strategy: dict, extra: dict) -> None:
    fit_section = {**cfg.to_dict(), "strategy": "distill", "backbone": cfg.student, "weights": cfg.student_weights}
    config = {
        "fit": fit_section,
        "strategy": strategy,
        "backbone": info.to_dict(),
        "data": {"root": splits.root, "val_source": splits.val_source, "counts": splits.counts(),
                 "classes": splits.classes},
        **extra,
        "precision": "fp32",
        "device": str(cfg.device),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "versions": library_versions(),
    }
    out.mkdir(parents=True, exist_ok=True)
    save_model(model, out / "model.safetensors", {"architecture": info.architecture,
                                                 "num_classes": len(splits.classes)})
    atomic_write_text(out / "config.yaml", yaml.safe_dump(config, sort_keys=False))
    atomic_write_text(out / "classes.json", json.dumps(splits.classes, indent=2) + "\n")
    write_history(out / "history.csv", history)
    write_json(out / "metrics.json", metrics)


def distill_config(cfg: DistillConfig) -> Run:
    """Run a distillation described by cfg; see distill()."""
    start = time.perf_counter()
    _validate(cfg)
    out, device, precision, cache_dir = prepare_run(cfg.out, cfg.device, cfg.precision, cfg.cache_dir)
    torch.manual_seed(cfg.seed)

    splits = load_splits(cfg.data, cfg.val_fraction, cfg.seed)
    teacher = Teacher.from_run(cfg.teacher)
    teacher.check_classes(splits.classes, cfg.data)
    _warn_if_teacher_saw_other_data(teacher, splits)
    unlabeled = unlabeled_samples(cfg.unlabeled, splits) if cfg.unlabeled else []

    backbone, info = load_backbone(cfg.student, cfg.student_weights)
    info.data_config = info.data_config.with_size(cfg.student_size)
    student = TransferModel(backbone, info.feature_dim, len(splits.classes), info.architecture)
    initial_state = copy.deepcopy(student.state_dict())  # the alone run starts from the very same weights
    scfg = info.data_config
    log.info("data %s: %d classes; train %d (+%d unlabeled), val %d, test %d", splits.root, len(splits.classes),
             len(splits.train), len(unlabeled), len(splits.val), len(splits.test))
    log.info("teacher %s (%s, %d px) -> student %s (%s weights, %d px); T=%g, alpha=%g, %d epochs, augment %s",
             teacher.source, teacher.model.architecture, teacher.data_config.input_size, cfg.student, info.weights,
             scfg.input_size, cfg.temperature, cfg.alpha, cfg.epochs, cfg.augment)

    train_samples = list(splits.train) + unlabeled
    # teacher outputs cached unless batches are augmented or hinted; mirrors reuse them (docs/results.md#distillation)
    live = cfg.augment not in CACHED_PRESETS or cfg.feature_weight > 0
    teacher_logits = None if live else _teacher_rows(teacher, train_samples, cfg, cache_dir, device, precision)
    options = train_options(cfg, cache_dir)
    phases = student_phases(student, cfg)
    n_classes = len(splits.classes)
    # --crops teacher: augmented crops are cut at the larger resolution, and each model gets them at its own size
    view = paired_view(scfg, teacher.data_config) if cfg.augment != "none" and cfg.crops == "teacher" else scfg

    alone: TrainResult | None = None
    if cfg.student_alone:  # same init, labelled data, phases and options; only the loss lacks the teacher
        alone_model = copy.deepcopy(student)
        alone_model.load_state_dict(initial_state)
        log.info("training the student alone (no teacher) for comparison")
        alone = train(alone_model, phases, splits.train, splits.val, scfg, options, num_classes=n_classes,
                      loss=LabelsOnlyLoss(scfg, view), train_view=view)

    kd = DistillationLoss(teacher.model, scfg, teacher.data_config, cfg.temperature, cfg.alpha,
                          cached=teacher_logits, live=live, teacher_precision=precision, view=view,
                          feature_weight=cfg.feature_weight)
    teacher_outputs = "live, on each batch" if kd.live else "cached, un-augmented" + (
        " (reused for mirrors)" if cfg.augment == "flip" else "")
    log.info("training the student with the teacher (teacher outputs %s; crops cut at %d px%s)",
             teacher_outputs, view.input_size,
             f"; feature hint weight {cfg.feature_weight:g}" if cfg.feature_weight else "")
    # with a feature hint the student trains with a projection to the teacher's features, saved without it
    trained = HintedStudent(student, teacher.model.head.in_features) if cfg.feature_weight else student
    trained_phases = student_phases(trained, cfg)  # with a hint: the projection's group too
    result = train(trained, trained_phases, train_samples, splits.val, scfg, options, loss=kd,
                   num_classes=n_classes, train_view=view)
    student = result.model.plain() if cfg.feature_weight else result.model
    history, train_seconds = result.history, result.seconds

    metrics, skipped = _headline_metrics(student, info, splits, cfg, device, out)
    skipped = list(splits.skipped) + list(result.skipped) + skipped
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
    alone_metrics = {}
    if alone is not None:
        alone_metrics, _ = _headline_metrics(alone.model, info, splits, cfg, device, out / ALONE_DIR)
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
                 unlabeled_images=len(unlabeled), temperature=cfg.temperature, alpha=cfg.alpha,
                 feature_weight=cfg.feature_weight, epochs=cfg.epochs, augment=cfg.augment)
    for split in ("val", "test"):
        if split != block_split and split in metrics:
            block[split] = {"teacher_accuracy": teacher_metrics[split]["accuracy"],
                            "student_accuracy": metrics[split]["accuracy"],
                            "student_alone_accuracy": alone_metrics.get(split, {}).get("accuracy")}

    metrics.update(train_seconds=round(train_seconds, 3), total_seconds=round(time.perf_counter() - start, 3),
                   skipped=[s.to_dict() for s in skipped], params=block["student_params"], distillation=block)
    strategy = {"name": "distill", "teacher": teacher.source, "temperature": cfg.temperature, "alpha": cfg.alpha,
                "feature_weight": cfg.feature_weight, "augment": cfg.augment,
                "teacher_outputs": teacher_outputs, "crops": cfg.crops,
                "crop_px": view.input_size, "unlabeled_images": len(unlabeled), "phases": _phase_record(trained_phases),
                "train_options": _options_record(options), "best_epoch": result.best_epoch,
                "stopped": result.stopped}
    teacher_record = {"teacher": {"run": teacher.source, "architecture": teacher.model.architecture,
                                  "data_config": teacher.data_config.to_dict(),
                                  "model_sha256": _teacher_sha(teacher)}}
    if alone is not None:
        alone_metrics.update(train_seconds=round(alone.seconds, 3), params=block["student_params"])
        _write_run(out / ALONE_DIR, alone.model, info, splits, cfg, alone_metrics, alone.history,
                   {"name": "student-alone", "phases": _phase_record(phases), "train_options": _options_record(options),
                    "best_epoch": alone.best_epoch, "note": "same student, labelled data, epochs and initial weights "
                    "as the distilled student; cross-entropy on the labels only"}, {})
    _write_run(out, student, info, splits, cfg, metrics, history, strategy, teacher_record)
    log.info("%s accuracy: teacher %.4f, distilled student %.4f%s; student %.1fx faster at batch 1 (%.2f vs %.2f ms)",
             block_split, block["teacher_accuracy"], block["student_accuracy"],
             "" if alone is None else f", student alone {block['student_alone_accuracy']:.4f}",
             block["speedup_batch1"], block["student_ms_batch1"], block["teacher_ms_batch1"])
    log.info("run written to %s (%.1fs)", out, metrics["total_seconds"])
    from ..report import write_report_safely  # last, after the run is saved: a report failure never loses a model

    write_report_safely(out)
    return Run(out)


def _phase_record(phases: list[Phase]) -> list[dict]:
    return [{"name": p.name, "epochs": p.epochs, "lrs": {g: float(f"{lr:.3g}") for g, lr in p.lrs.items()},
             "warmup_epochs": p.warmup_epochs} for p in phases]


def _options_record(options: TrainOptions) -> dict:
    return {k: v for k, v in options.to_dict().items() if k not in ("progress", "cache_dir", "checkpoint_dir")}


def _teacher_sha(teacher: Teacher) -> str | None:
    path = Path(teacher.source) / "model.safetensors"
    return sha256_file(path) if path.is_file() else None


__all__ = ["distill", "distill_config", "unlabeled_samples", "ALONE_DIR"]
