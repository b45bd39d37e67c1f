"""The training loop: phases from a strategy, a pluggable loss, val-based model selection, checkpoints, DDP.

It knows no strategy by name: it trains the layer groups each Phase lists at the rates it gives.
"""
from __future__ import annotations

import contextlib
import copy
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from ..backbones.model import TransferModel
from ..confusion import confusion_metrics
from ..data.augment import eval_view, mix_batch, train_transform
from ..data.decoded_cache import DecodedImages, decode_images
from ..data.layout import Sample, SkippedFile
from ..data.multilabel import is_multilabel, label_matrix
from ..data.transforms import DataConfig
from ..device import autocast, resolve_precision
from ..errors import DataError, TlearnError
from ..files import default_cache_dir
from ..hashing import stable_hash
from .batchnorm import bn_by_group, describe_modes, set_bn_modes
from .checkpoint import BEST, load_best, load_checkpoint, restore_optimizer, save_checkpoint, save_weights
from .data import AugmentedImages, EvalImages, default_train_workers, epoch_order, epoch_seed, train_loader
from .distributed import DistEnv, all_sum, barrier, init_distributed, training_device, training_threads, wrap_ddp
from .ema import WeightAverage
from .l2sp import StartingPointPenalty
from .losses import Batch, BinaryCrossEntropy, CrossEntropy, LossFn, inverse_frequency_weights, positive_weights
from .memory import micro_batch, micro_slices, release_freed_memory
from .optim import apply_lr, build_optimizer, set_trainable
from .options import TrainOptions
from .phases import Phase, lr_at
from .selection import within_one_se

log = logging.getLogger("tlearn")

EpochCallback = Callable[[dict], bool | None]  # gets each history row; return True to stop training
# the training images as a dataset of (index, image, label) with an `epoch` attribute and `labels`, made from the
# decoded images (default: AugmentedImages under options.augment)
TrainImages = Callable[[DecodedImages], Dataset]


@dataclass
class TrainResult:
    model: TransferModel  # on the CPU, with the best epoch's weights (the last epoch's when there is no val)
    history: list[dict]  # one row per epoch: epoch, lr (peak that epoch), train_loss, val_loss, val_accuracy, seconds, ...
    best_epoch: int
    stopped: str  # completed | early stopping | time budget | epoch cap | callback
    skipped: list[SkippedFile] = field(default_factory=list)
    seconds: float = 0.0
    decode_seconds: float = 0.0
    details: dict = field(default_factory=dict)


def train_precision(requested: str, device: torch.device) -> str:
    """auto trains in fp32 on the CPU (bf16 does not speed up backward there) and bf16 on CUDA when able."""
    if requested == "auto":
        return resolve_precision("auto", device) if device.type == "cuda" else "fp32"
    return resolve_precision(requested, device)


def _decode(samples, data_config, options, cache_dir, env, desc) -> DecodedImages:
    """Rank 0 decodes into the shared cache first; the other processes then read it."""
    workers = default_train_workers() if options.num_workers is None else options.num_workers
    if env.is_main:
        decoded = decode_images(samples, data_config, cache_dir, num_workers=workers,
                                progress=options.progress, desc=desc)
    barrier(env)
    if not env.is_main:
        decoded = decode_images(samples, data_config, cache_dir, num_workers=0)
    return decoded


@torch.inference_mode()
def evaluate_decoded(model: nn.Module, decoded: DecodedImages, data_config: DataConfig, num_classes: int,
                     device: torch.device, precision: str, batch_size: int, env: DistEnv = DistEnv()) -> dict:
    """val_loss, val_accuracy, val_balanced_accuracy, val_macro_f1 on cached centre crops (the eval view);
    under DDP each process takes every world-th image and the confusion counts are summed."""
    model.eval()
    dataset = EvalImages(decoded, eval_view(data_config))
    mine = list(range(env.rank, len(dataset), env.world))
    if is_multilabel(decoded.samples):
        return _evaluate_multilabel(model, dataset, label_matrix(decoded.samples, num_classes), mine, device,
                                    precision, batch_size, env)
    confusion = np.zeros((num_classes, num_classes))
    loss_sum = 0.0
    for start in range(0, len(mine), batch_size):
        items = [dataset[k] for k in mine[start : start + batch_size]]
        images = torch.stack([x for _, x, _ in items]).to(device).contiguous(memory_format=torch.channels_last)
        labels = torch.tensor([y for _, _, y in items], device=device)
        with autocast(precision, device):
            logits = model(images).float()
        loss_sum += float(nn.functional.cross_entropy(logits, labels, reduction="sum"))
        np.add.at(confusion, (labels.cpu().numpy(), logits.argmax(1).cpu().numpy()), 1)
    summed = all_sum([loss_sum, *confusion.ravel().tolist()], env)
    counts = np.array(summed[1:]).reshape(num_classes, num_classes)
    return {"val_loss": summed[0] / max(counts.sum(), 1),
            **{f"val_{k}": v for k, v in confusion_metrics(counts).items()}}


def _evaluate_multilabel(model, dataset, targets: np.ndarray, mine: list[int], device, precision, batch_size,
                         env: DistEnv) -> dict:
    """val_loss (mean binary cross-entropy per label), val_accuracy (subset accuracy at 0.5) and val_hamming."""
    loss_sum = exact = wrong = 0.0
    for start in range(0, len(mine), batch_size):
        items = [dataset[k] for k in mine[start : start + batch_size]]
        images = torch.stack([x for _, x, _ in items]).to(device).contiguous(memory_format=torch.channels_last)
        y = torch.from_numpy(targets[[k for k, _, _ in items]]).to(device)
        with autocast(precision, device):
            logits = model(images).float()
        loss_sum += float(nn.functional.binary_cross_entropy_with_logits(logits, y, reduction="sum"))
        mismatch = (logits >= 0) != (y > 0.5)
        exact += float((~mismatch.any(1)).sum())
        wrong += float(mismatch.sum())
    loss_sum, exact, wrong, n = all_sum([loss_sum, exact, wrong, float(len(mine))], env)
    cells = max(n * targets.shape[1], 1)
    return {"val_loss": loss_sum / cells, "val_accuracy": exact / max(n, 1), "val_hamming": wrong / cells}


def _content_key(decoded: DecodedImages | None) -> str | None:
    """The decoded-image cache key: a hash of every file's sha256 (computed while decoding) and the geometry."""
    return decoded.path.stem if decoded is not None and decoded.path is not None else None


def _settings_fingerprint(phases, options, samples, data_config, train_view, decoded, val_decoded) -> dict:
    """What must not change between a run and its resumption: the schedule, the options, and the train and val
    images (their paths and their contents)."""
    volatile = {"resume", "progress", "num_workers", "checkpoint_dir", "max_seconds", "cache_dir", "device",
                "eval_batch_size", "micro_batch", "memory_budget"}  # micro-batches: the same gradient
    return json.loads(json.dumps({
        "phases": [{"name": p.name, "epochs": p.epochs, "lrs": p.lrs, "warmup_epochs": p.warmup_epochs,
                    "final_lr_ratio": p.final_lr_ratio} for p in phases],
        "options": {k: v for k, v in options.to_dict().items() if k not in volatile},
        "samples": stable_hash([str(s.path) for s in samples]),
        "train_contents": _content_key(decoded),
        "val_contents": _content_key(val_decoded),
        "data_config": data_config.to_dict(),
        **({"train_view": train_view.to_dict()} if train_view != data_config else {}),
    }))


_SECTION_NAMES = {"phases": "the training phases (epochs, learning rates)", "samples": "the train image list",
                  "train_contents": "the contents of the train images", "val_contents": "the contents of the val images",
                  "data_config": "the input size or normalisation", "train_view": "the training crop size"}


def _check_resume(saved: dict, current: dict, folder: Path) -> None:
    diffs = []
    for section in current:
        a, b = saved.get(section), current[section]
        if section == "options" and isinstance(a, dict):
            diffs += [f"{k}: {a.get(k)!r} -> {v!r}" for k, v in b.items() if a.get(k) != v]
        elif a != b and not (a is None and section.endswith("_contents")):  # older checkpoints lack contents
            diffs.append(f"{_SECTION_NAMES.get(section, section)} changed")
    if diffs:
        raise TlearnError(f"cannot resume from {folder}: {'; '.join(diffs)} since it was written. Rerun with the "
                          "original settings, or without --resume to train from the start, or use a new --out.")


def _schedule(phases: Sequence[Phase], max_epochs: int | None) -> list[tuple[int, int]]:
    """(phase index, epoch within phase) for every epoch the run will train, capped at max_epochs."""
    plan = [(i, e) for i, p in enumerate(phases) for e in range(p.epochs)]
    return plan[:max_epochs] if max_epochs else plan


def train(model: TransferModel, phases: Sequence[Phase], train_samples: Sequence[Sample],
          val_samples: Sequence[Sample], data_config: DataConfig, options: TrainOptions | None = None, *,
          loss: LossFn | None = None, num_classes: int | None = None,
          on_epoch: EpochCallback | None = None, train_view: DataConfig | None = None,
          train_images: TrainImages | None = None) -> TrainResult:
    """Train model through phases on train_samples, selecting the best epoch on val_samples.

    data_config sets the input size and normalisation (pass DataConfig.with_size(...) to train smaller).
    train_view, when given, decodes and augments the training images with another DataConfig (distillation:
    the larger of teacher and student, so each sees the same crop at its own resolution); the loss then turns
    batch.images into the model's input. Validation always uses data_config.
    train_images, when given, makes the training dataset from the decoded images in place of the augmentation
    preset (distillation on stored teacher views: each item is a stored view, its index the view's row).
    loss defaults to cross-entropy with options' class weights and label smoothing. Under torchrun every
    process calls this; each trains on its share of every batch, and only rank 0 writes checkpoints.
    """
    options = options or TrainOptions()
    start = time.perf_counter()
    num_classes = num_classes or model.head.out_features
    env = init_distributed(training_device(options.device, DistEnv()))
    device = training_device(options.device, env)
    threads, why = training_threads(env, options.threads)
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        run = _setup(model, phases, list(train_samples), list(val_samples), data_config, options, loss, num_classes,
                     env, device, start, f"{threads} ({why})", train_view or data_config, train_images)
        return _train(run, on_epoch)
    finally:
        torch.set_num_threads(previous_threads)


@dataclass
class _Setup:
    """What the epochs share, settled once before the first: data, model, loss, schedule and where to save."""

    model: TransferModel
    phases: Sequence[Phase]
    schedule: list[tuple[int, int]]
    options: TrainOptions
    data_config: DataConfig
    num_classes: int
    env: DistEnv
    device: torch.device
    precision: str
    eval_precision: str
    threads: str
    decoded: DecodedImages
    val_decoded: DecodedImages | None
    dataset: Dataset  # AugmentedImages, or what train_images made
    workers: int
    micro_batch: int  # images per forward/backward pass
    loss: LossFn
    groups: list
    bn_groups: dict
    fingerprint: dict
    folder: Path | None  # checkpoints
    anchor: StartingPointPenalty | None
    average: WeightAverage | None
    evaluated: nn.Module  # the model, or a copy that holds the averaged weights
    start: float
    decode_seconds: float
    skipped: list[SkippedFile]
    multilabel: bool = False  # select epochs by val loss: subset accuracy is dominated by the common label sets


@dataclass
class _State:
    """What changes from epoch to epoch; the checkpoint holds enough of it to resume."""

    history: list[dict] = field(default_factory=list)
    best: dict = field(default_factory=lambda: {"epoch": 0, "val_accuracy": -1.0, "val_loss": float("inf")})
    best_state: dict | None = None
    bad_epochs: int = 0
    done: int = 0  # epochs finished (resumed ones included)
    resumed_optimizer: dict | None = None
    optimizer: torch.optim.Optimizer | None = None
    net: nn.Module | None = None  # the model, wrapped for DDP
    phase_index: int = -1
    epoch_seconds: list[float] = field(default_factory=list)
    stopped: str = "completed"


def _train(run: _Setup, on_epoch: EpochCallback | None) -> TrainResult:
    """The epochs of the schedule (those after a resumed checkpoint), until done, stopped early or out of time."""
    options, env = run.options, run.env
    state = _resume(run) if options.resume and run.folder is not None else _State()
    last_phase = run.schedule[-1][0] if run.schedule else 0
    for epoch, (phase_index, phase_epoch) in enumerate(run.schedule, start=1):
        if epoch <= state.done:
            continue
        if options.max_seconds and state.epoch_seconds and (
                time.perf_counter() - run.start + state.epoch_seconds[-1] > options.max_seconds):
            state.stopped = "time budget"
            break
        row = _run_epoch(run, state, epoch, phase_index, phase_epoch)
        improved = _select(run, state, row, epoch, phase_index == last_phase)
        if env.is_main:
            _report_epoch(run, row, epoch, improved)
            _save(run, state, epoch, improved)
        barrier(env)
        if on_epoch is not None and on_epoch(row):
            state.stopped = "callback"
            break
        if options.patience is not None and state.bad_epochs >= options.patience:
            state.stopped = "early stopping"
            break
    else:
        if options.max_epochs and options.max_epochs < sum(p.epochs for p in run.phases):
            state.stopped = "epoch cap"
    return _result(run, state)


def _setup(model, phases, train_samples, val_samples, data_config, options, loss, num_classes, env, device, start,
           threads, train_view, train_images=None) -> _Setup:
    """Decode the images (or read them from the cache), build the loss and the augmented dataset, move the model."""
    precision = train_precision(options.precision, device)
    cache_dir = Path(options.cache_dir).expanduser() if options.cache_dir else default_cache_dir()
    decoded = _decode(train_samples, train_view, options, cache_dir, env, "decode train")
    val_decoded = _decode(val_samples, data_config, options, cache_dir, env, "decode val") if val_samples else None
    decode_seconds = time.perf_counter() - start
    if len(decoded) == 0:
        raise DataError("no training image could be decoded; see the skipped files.")
    log.info("decoded-image cache: train %d (%s), val %d, %d px squares, %.1fs; %s, %s, threads %s", len(decoded),
             "hit" if decoded.from_cache else "built", len(val_decoded) if val_decoded else 0,
             decoded.images.shape[1], decode_seconds, device, precision, threads)
    multilabel = is_multilabel(train_samples)
    if multilabel and options.sampler == "balanced":
        raise TlearnError("--sampler balanced draws classes equally often, which a multi-label task (several "
                          "labels per image) does not have; use --class-weights auto to weigh rare labels.")
    if loss is None and multilabel:
        targets = label_matrix(train_samples, num_classes)
        loss = BinaryCrossEntropy(targets, positive_weights(targets[decoded.rows])
                                  if options.class_weights == "auto" else None)
    elif loss is None:
        weights = (inverse_frequency_weights(decoded.labels.tolist(), num_classes)
                   if options.class_weights == "auto" else None)
        loss = CrossEntropy(weights, options.label_smoothing)
    model = model.to(device).to(memory_format=torch.channels_last)
    groups = model.layer_groups()
    average = WeightAverage(model, options.ema) if options.ema else None
    workers = default_train_workers() if options.num_workers is None else options.num_workers
    micro = micro_batch(model, options, train_view.training_size, precision, device, workers)
    if micro < options.batch_size and env.is_main:
        log.info("each batch of %d in micro-batches of %d images (the same gradient, less memory)",
                 options.batch_size, micro)
    return _Setup(
        model=model, phases=phases, schedule=_schedule(phases, options.max_epochs), options=options,
        data_config=data_config, num_classes=num_classes, env=env, device=device, precision=precision,
        eval_precision=resolve_precision(options.eval_precision, device), threads=threads, decoded=decoded,
        val_decoded=val_decoded,
        dataset=(train_images(decoded) if train_images is not None
                 else AugmentedImages(decoded, train_transform(train_view, options.augment), options.seed)),
        workers=workers, micro_batch=micro, loss=loss,
        groups=groups, bn_groups=bn_by_group(model, groups), multilabel=multilabel,
        fingerprint=_settings_fingerprint(phases, options, train_samples, data_config, train_view, decoded,
                                          val_decoded),
        folder=Path(options.checkpoint_dir) if options.checkpoint_dir else None,
        # remembered before a resumed checkpoint is loaded: the anchor is the pretrained start, not the last epoch
        anchor=StartingPointPenalty(model, options.l2_sp) if options.l2_sp else None,
        average=average, evaluated=copy.deepcopy(model) if average else model,
        start=start, decode_seconds=decode_seconds,
        skipped=list(decoded.skipped) + (list(val_decoded.skipped) if val_decoded else []),
    )


def _resume(run: _Setup) -> _State:
    """The state after the last checkpoint in run.folder (its settings checked against this run's), if any."""
    expected = run.model.state_dict()
    loaded = load_checkpoint(run.folder, expected)  # every file checked against the model before any is loaded
    if loaded is None:
        log.info("--resume: no checkpoint in %s yet; starting from the beginning", run.folder)
        return _State()
    model_state, optimizer_state, saved = loaded
    _check_resume(saved["settings"], run.fingerprint, run.folder)
    if run.average is not None and "ema" not in saved["extra_weights"]:
        raise TlearnError(f"the checkpoint in {run.folder} has no averaged weights (ema.safetensors) for --ema; "
                          "rerun without --resume to train from the start, or use a new --out.")
    best_state = load_best(run.folder, expected)
    run.model.load_state_dict(model_state)
    state = _State(history=saved["history"], best=saved["best"], bad_epochs=saved["bad_epochs"],
                   done=saved["epoch"], resumed_optimizer=optimizer_state, best_state=best_state)
    if run.average is not None:
        run.average.load(saved["extra_weights"]["ema"], saved["ema_steps"])
    log.info("resumed from %s after epoch %d of %d", run.folder, state.done, len(run.schedule))
    return state


def _enter_phase(run: _Setup, state: _State, phase_index: int, phase_epoch: int) -> None:
    """Unfreeze the phase's groups, build its optimizer (restoring a resumed one mid-phase), wrap for DDP."""
    phase, model = run.phases[phase_index], run.model
    set_trainable(run.groups, phase)
    state.optimizer = build_optimizer(run.groups, phase, run.options)
    if state.resumed_optimizer is not None and phase_epoch > 0:
        restore_optimizer(state.optimizer, state.resumed_optimizer, run.folder)
    state.resumed_optimizer = None
    state.net = wrap_ddp(model, run.device) if run.env.enabled else model
    state.phase_index = phase_index
    frozen = [g for g, _ in run.groups if g not in phase.lrs]
    modes = set_bn_modes(model, run.bn_groups, set(phase.lrs), run.options.freeze_bn)
    if run.env.is_main:
        log.info("phase %s: %d epoch(s), training %d of %d layer groups%s; %s", phase.name, phase.epochs,
                 len(phase.lrs), len(run.groups), f" (frozen: {', '.join(frozen)})" if frozen else "",
                 describe_modes(modes))


def _run_epoch(run: _Setup, state: _State, epoch: int, phase_index: int, phase_epoch: int) -> dict:
    """Train one epoch and evaluate on val: its history row."""
    t0 = time.perf_counter()
    phase, options, env = run.phases[phase_index], run.options, run.env
    if phase_index != state.phase_index:
        _enter_phase(run, state, phase_index, phase_epoch)
    set_bn_modes(run.model, run.bn_groups, set(phase.lrs), options.freeze_bn)
    run.dataset.epoch = epoch
    torch.manual_seed(epoch_seed(options.seed, epoch, 20_000 + env.rank))  # dropout: not what ran before
    order = epoch_order(run.decoded.labels, epoch, options.seed, options.sampler == "balanced", env.rank, env.world)
    loader = train_loader(run.dataset, order, options.batch_size, run.workers)
    mix_gen = torch.Generator().manual_seed(epoch_seed(options.seed, epoch, 10_000 + env.rank))
    bar = tqdm(total=len(order), desc=f"epoch {epoch}/{len(run.schedule)} {phase.name}", unit="img",
               disable=not (options.progress and env.is_main), leave=False)
    loss_sum, seen, lr = 0.0, 0, 0.0
    state.optimizer.zero_grad(set_to_none=True)
    for step, (indices, images, labels) in enumerate(loader):
        lr = max(lr, apply_lr(state.optimizer, lr_at(phase, phase_epoch + step / len(loader))))
        value = _step(run, state, step, len(loader), indices, images, labels, mix_gen)
        loss_sum += float(value.detach()) * len(labels)
        seen += len(labels)
        bar.update(len(labels))
        bar.set_postfix(loss=f"{loss_sum / seen:.4f}")
    bar.close()
    total_loss, total_seen = all_sum([loss_sum, float(seen)], env)
    row = {"epoch": epoch, "lr": lr, "train_loss": total_loss / max(total_seen, 1)}
    if run.average is not None:
        run.evaluated.load_state_dict(run.average.state)
    if run.val_decoded is not None and len(run.val_decoded):
        row.update(evaluate_decoded(run.evaluated, run.val_decoded, run.data_config, run.num_classes, run.device,
                                    run.eval_precision, options.eval_batch_size, env))
    release_freed_memory()
    row["seconds"] = time.perf_counter() - t0
    row["phase"] = phase.name
    state.epoch_seconds.append(row["seconds"])
    state.history.append(row)
    return row


def _step(run: _Setup, state: _State, step: int, steps: int, indices, images, labels, mix_gen) -> torch.Tensor:
    """One batch: forward and backward in micro-batches of run.micro_batch images (the gradient of the batch's
    mean loss either way), and at an accumulation boundary the optimizer step. Its data loss."""
    options, device, env = run.options, run.device, run.env
    mix, targets = None, labels
    if options.augment == "strong":
        images, targets, mix = mix_batch(images, labels, run.num_classes, mix_gen)
    boundary = (step + 1) % options.accumulation == 0 or step + 1 == steps
    parts = micro_slices(len(labels), run.micro_batch)
    value_sum = torch.zeros(())
    for k, part in enumerate(parts):
        batch = Batch(images[part].to(device, non_blocking=True).contiguous(memory_format=torch.channels_last),
                      labels[part].to(device), indices[part], targets[part].to(device), mix,
                      partners=None if mix is None else indices[mix[0]][part])
        share = len(batch.labels) / len(labels)  # the batch's mean loss is the share-weighted sum of its parts'
        last = k == len(parts) - 1
        with state.net.no_sync() if env.enabled and not (boundary and last) else contextlib.nullcontext():
            with autocast(run.precision, device):
                value = run.loss(state.net, batch)
            total = value * share if len(parts) > 1 else value
            if run.anchor is not None and k == 0:  # once per batch; history logs the data loss
                total = total + run.anchor(run.model)
            (total / options.accumulation).backward()
        value_sum = value_sum + value.detach().float().cpu() * share
    if boundary:
        if options.grad_clip:
            torch.nn.utils.clip_grad_norm_([p for g in state.optimizer.param_groups for p in g["params"]],
                                           options.grad_clip)
        state.optimizer.step()
        state.optimizer.zero_grad(set_to_none=True)
        if run.average is not None:
            run.average.update(run.model)
    return value_sum


def _select(run: _Setup, state: _State, row: dict, epoch: int, final_phase: bool) -> bool:
    """Keep the epoch's weights when val improved (accuracy, then loss; multi-label: loss; with keep_epoch
    "one-se": when within one standard error of the best so far); count patience in the final phase."""
    if run.multilabel:
        improved = "val_loss" not in row or row["val_loss"] < state.best["val_loss"]
    elif run.options.keep_epoch == "one-se" and "val_accuracy" in row:
        top = max(r["val_accuracy"] for r in state.history if "val_accuracy" in r)  # row is in history
        improved = within_one_se(row["val_accuracy"], top, len(run.val_decoded))
    else:
        improved = "val_accuracy" not in row or (row["val_accuracy"], -row["val_loss"]) > (
            state.best["val_accuracy"], -state.best["val_loss"])
    if improved:
        state.best = {"epoch": epoch, "val_accuracy": row.get("val_accuracy", -1.0),
                      "val_loss": row.get("val_loss", float("inf"))}
        state.best_state = {k: v.detach().cpu().clone() for k, v in run.evaluated.state_dict().items()}
        state.bad_epochs = 0
    elif final_phase:
        state.bad_epochs += 1
    return improved


def _report_epoch(run: _Setup, row: dict, epoch: int, improved: bool) -> None:
    log.info("epoch %d/%d %s: lr %.3g, train_loss %.4f%s (%.1fs)%s", epoch, len(run.schedule), row["phase"],
             row["lr"], row["train_loss"],
             f", val_loss {row['val_loss']:.4f}, val_accuracy {row['val_accuracy']:.4f}" if "val_loss" in row else "",
             row["seconds"], " *" if improved else "")


def _save(run: _Setup, state: _State, epoch: int, improved: bool) -> None:
    """The epoch's checkpoint (and the best weights when they changed), atomically."""
    if run.folder is None:
        return
    if improved:
        run.folder.mkdir(parents=True, exist_ok=True)
        save_weights(state.best_state, run.folder / BEST)
    average = run.average
    save_checkpoint(run.folder, epoch, run.model.state_dict(), state.optimizer,
                    {"epoch": epoch, "history": state.history, "best": state.best, "bad_epochs": state.bad_epochs,
                     "settings": run.fingerprint, "ema_steps": average.steps if average else 0},
                    extra_weights={"ema": average.state} if average else None)


def _result(run: _Setup, state: _State) -> TrainResult:
    """The best epoch's weights on the CPU, with the history and how training ended."""
    model = run.model.cpu().to(memory_format=torch.contiguous_format)
    if state.best_state is not None:
        model.load_state_dict(state.best_state)
    model.eval()
    release_freed_memory()  # worker processes forked after training (--num-workers N) then do not map freed pages
    best = state.best
    if run.env.is_main:
        log.info("training %s after %d epoch(s); best epoch %d (val_accuracy %.4f)", state.stopped,
                 len(state.history), best["epoch"], best["val_accuracy"])
    return TrainResult(model=model, history=state.history, best_epoch=best["epoch"], stopped=state.stopped,
                       skipped=run.skipped, seconds=time.perf_counter() - run.start,
                       decode_seconds=run.decode_seconds,
                       details={"best_epoch": best["epoch"], "stopped": state.stopped, "precision": run.precision,
                                "world_size": run.env.world, "decoded_from_cache": run.decoded.from_cache,
                                "threads": run.threads})
