"""The training loop: phases from a strategy, a pluggable loss, val-based model selection, checkpoints, DDP.

It knows no strategy by name: it trains the layer groups each Phase lists at the rates it gives.
"""
from __future__ import annotations

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
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from ..backbones.model import TransferModel
from ..data.augment import eval_view, mix_batch, train_transform
from ..data.decoded_cache import DecodedImages, decode_images
from ..data.layout import Sample, SkippedFile
from ..data.transforms import DataConfig
from ..device import autocast, resolve_precision
from ..errors import DataError, TlearnError
from ..features.cache import default_cache_dir
from ..hashing import stable_hash
from .batchnorm import bn_by_group, describe_modes, set_bn_modes
from .checkpoint import load_checkpoint, save_checkpoint, save_weights
from .data import AugmentedImages, EvalImages, default_train_workers, epoch_order, epoch_seed, train_loader
from .distributed import DistEnv, all_sum, barrier, init_distributed, training_device, training_threads
from .ema import WeightAverage
from .l2sp import StartingPointPenalty
from .losses import Batch, CrossEntropy, LossFn, inverse_frequency_weights
from .optim import apply_lr, build_optimizer, set_trainable
from .options import TrainOptions
from .phases import Phase, lr_at

log = logging.getLogger("tlearn")

EpochCallback = Callable[[dict], bool | None]  # gets each history row; return True to stop training


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


def _confusion_metrics(confusion: np.ndarray, loss_sum: float) -> dict:
    n = confusion.sum()
    tp = np.diag(confusion)
    support, predicted = confusion.sum(1), confusion.sum(0)
    present = support > 0
    recall = tp[present] / support[present]
    precision = np.divide(tp, predicted, out=np.zeros_like(tp, dtype=float), where=predicted > 0)
    rec_all = np.divide(tp, support, out=np.zeros_like(tp, dtype=float), where=support > 0)
    f1 = np.divide(2 * precision * rec_all, precision + rec_all, out=np.zeros_like(rec_all),
                   where=(precision + rec_all) > 0)
    return {"val_loss": loss_sum / max(n, 1), "val_accuracy": float(tp.sum() / max(n, 1)),
            "val_balanced_accuracy": float(recall.mean()) if present.any() else 0.0,
            "val_macro_f1": float(f1[present].mean()) if present.any() else 0.0}


@torch.inference_mode()
def evaluate_decoded(model: nn.Module, decoded: DecodedImages, data_config: DataConfig, num_classes: int,
                     device: torch.device, precision: str, batch_size: int, env: DistEnv = DistEnv()) -> dict:
    """val_loss, val_accuracy, val_balanced_accuracy, val_macro_f1 on cached centre crops (the eval view);
    under DDP each process takes every world-th image and the confusion counts are summed."""
    model.eval()
    dataset = EvalImages(decoded, eval_view(data_config))
    mine = list(range(env.rank, len(dataset), env.world))
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
    return _confusion_metrics(np.array(summed[1:]).reshape(num_classes, num_classes), summed[0])


def _settings_fingerprint(phases, options, samples, data_config, train_view) -> dict:
    """What must not change between a run and its resumption."""
    volatile = {"resume", "progress", "num_workers", "checkpoint_dir", "max_seconds", "cache_dir", "tensorboard",
                "device", "eval_batch_size"}
    return json.loads(json.dumps({
        "phases": [{"name": p.name, "epochs": p.epochs, "lrs": p.lrs, "warmup_epochs": p.warmup_epochs,
                    "final_lr_ratio": p.final_lr_ratio} for p in phases],
        "options": {k: v for k, v in options.to_dict().items() if k not in volatile},
        "samples": stable_hash([str(s.path) for s in samples]),
        "data_config": data_config.to_dict(),
        **({"train_view": train_view.to_dict()} if train_view != data_config else {}),
    }))


def _check_resume(saved: dict, current: dict, folder: Path) -> None:
    diffs = []
    for section in current:
        a, b = saved.get(section), current[section]
        if section == "options" and isinstance(a, dict):
            diffs += [f"{k}: {a.get(k)!r} -> {v!r}" for k, v in b.items() if a.get(k) != v]
        elif a != b:
            diffs.append(f"{section} differ")
    if diffs:
        raise TlearnError(f"cannot resume from {folder}: settings changed since it was written "
                          f"({'; '.join(diffs)}); rerun with the original settings or without --resume.")


def _tensorboard(options: TrainOptions, env: DistEnv):
    if not (options.tensorboard and options.checkpoint_dir and env.is_main):
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(str(Path(options.checkpoint_dir).parent / "tensorboard"))


def _schedule(phases: Sequence[Phase], max_epochs: int | None) -> list[tuple[int, int]]:
    """(phase index, epoch within phase) for every epoch the run will train, capped at max_epochs."""
    plan = [(i, e) for i, p in enumerate(phases) for e in range(p.epochs)]
    return plan[:max_epochs] if max_epochs else plan


def train(model: TransferModel, phases: Sequence[Phase], train_samples: Sequence[Sample],
          val_samples: Sequence[Sample], data_config: DataConfig, options: TrainOptions | None = None, *,
          loss: LossFn | None = None, num_classes: int | None = None,
          on_epoch: EpochCallback | None = None, train_view: DataConfig | None = None) -> TrainResult:
    """Train model through phases on train_samples, selecting the best epoch on val_samples.

    data_config sets the input size and normalisation (pass DataConfig.with_size(...) to train smaller).
    train_view, when given, decodes and augments the training images with another DataConfig (distillation:
    the larger of teacher and student, so each sees the same crop at its own resolution); the loss then turns
    batch.images into the model's input. Validation always uses data_config.
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
        return _train(model, phases, train_samples, val_samples, data_config, options, loss, num_classes, on_epoch,
                      env, device, start, f"{threads} ({why})", train_view or data_config)
    finally:
        torch.set_num_threads(previous_threads)


def _train(model, phases, train_samples, val_samples, data_config, options, loss, num_classes, on_epoch, env,
           device, start, threads, train_view) -> TrainResult:
    precision = train_precision(options.precision, device)
    eval_precision = resolve_precision(options.eval_precision, device)
    cache_dir = Path(options.cache_dir).expanduser() if options.cache_dir else default_cache_dir()
    train_samples, val_samples = list(train_samples), list(val_samples)

    decoded = _decode(train_samples, train_view, options, cache_dir, env, "decode train")
    val_decoded = _decode(val_samples, data_config, options, cache_dir, env, "decode val") if val_samples else None
    decode_seconds = time.perf_counter() - start
    if len(decoded) == 0:
        raise DataError("no training image could be decoded; see the skipped files.")
    skipped = list(decoded.skipped) + (list(val_decoded.skipped) if val_decoded else [])
    log.info("decoded-image cache: train %d (%s), val %d, %d px squares, %.1fs; %s, %s, threads %s", len(decoded),
             "hit" if decoded.from_cache else "built", len(val_decoded) if val_decoded else 0,
             decoded.images.shape[1], decode_seconds, device, precision, threads)

    if loss is None:
        weights = (inverse_frequency_weights(decoded.labels.tolist(), num_classes)
                   if options.class_weights == "auto" else None)
        loss = CrossEntropy(weights, options.label_smoothing)
    dataset = AugmentedImages(decoded, train_transform(train_view, options.augment), options.seed)
    workers = default_train_workers() if options.num_workers is None else options.num_workers

    model = model.to(device).to(memory_format=torch.channels_last)
    groups = model.layer_groups()
    bn_groups = bn_by_group(model, groups)
    schedule = _schedule(phases, options.max_epochs)
    fingerprint = _settings_fingerprint(phases, options, train_samples, data_config, train_view)
    folder = Path(options.checkpoint_dir) if options.checkpoint_dir else None

    # remembered before a resumed checkpoint is loaded: the anchor is the pretrained start, not the last epoch
    anchor = StartingPointPenalty(model, options.l2_sp) if options.l2_sp else None
    average = WeightAverage(model, options.ema) if options.ema else None
    evaluated = copy.deepcopy(model) if average else model  # holds the averaged weights for evaluation
    history: list[dict] = []
    best = {"epoch": 0, "val_accuracy": -1.0, "val_loss": float("inf")}
    best_state: dict | None = None
    bad_epochs, done, resumed_optimizer = 0, 0, None
    if options.resume and folder is not None:
        loaded = load_checkpoint(folder)
        if loaded is None:
            log.info("--resume: no checkpoint in %s yet; starting from the beginning", folder)
        else:
            model_state, resumed_optimizer, state = loaded
            _check_resume(state["settings"], fingerprint, folder)
            model.load_state_dict(model_state)
            history, best, bad_epochs, done = state["history"], state["best"], state["bad_epochs"], state["epoch"]
            if average is not None:
                average.load(state["extra_weights"]["ema"], state["ema_steps"])
            if (folder / "best.safetensors").is_file():
                from safetensors.torch import load_file

                best_state = load_file(str(folder / "best.safetensors"))
            log.info("resumed from %s after epoch %d of %d", folder, done, len(schedule))

    writer = _tensorboard(options, env)
    stopped = "completed"
    optimizer, net, current_phase = None, model, -1
    last_phase = schedule[-1][0] if schedule else 0
    epoch_seconds: list[float] = []
    for epoch, (phase_index, phase_epoch) in enumerate(schedule, start=1):
        if epoch <= done:
            continue
        if options.max_seconds and epoch_seconds and (
                time.perf_counter() - start + epoch_seconds[-1] > options.max_seconds):
            stopped = "time budget"
            break
        phase = phases[phase_index]
        t0 = time.perf_counter()
        if phase_index != current_phase:
            set_trainable(groups, phase)
            optimizer = build_optimizer(groups, phase, options)
            if resumed_optimizer is not None and phase_epoch > 0:
                optimizer.load_state_dict(resumed_optimizer)
            resumed_optimizer = None
            net = (DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
                   if env.enabled else model)
            current_phase = phase_index
            frozen = [g for g, _ in groups if g not in phase.lrs]
            modes = set_bn_modes(model, bn_groups, set(phase.lrs), options.freeze_bn)
            if env.is_main:
                log.info("phase %s: %d epoch(s), training %d of %d layer groups%s; %s", phase.name, phase.epochs,
                         len(phase.lrs), len(groups), f" (frozen: {', '.join(frozen)})" if frozen else "",
                         describe_modes(modes))
        set_bn_modes(model, bn_groups, set(phase.lrs), options.freeze_bn)

        dataset.epoch = epoch
        torch.manual_seed(epoch_seed(options.seed, epoch, 20_000 + env.rank))  # dropout: not what ran before
        order = epoch_order(decoded.labels, epoch, options.seed, options.sampler == "balanced", env.rank, env.world)
        loader = train_loader(dataset, order, options.batch_size, workers)
        mix_gen = torch.Generator().manual_seed(epoch_seed(options.seed, epoch, 10_000 + env.rank))
        steps_per_epoch = len(loader)
        loss_sum, seen = 0.0, 0
        lr = 0.0
        bar = tqdm(total=len(order), desc=f"epoch {epoch}/{len(schedule)} {phase.name}", unit="img",
                   disable=not (options.progress and env.is_main), leave=False)
        optimizer.zero_grad(set_to_none=True)
        for step, (indices, images, labels) in enumerate(loader):
            lr = max(lr, apply_lr(optimizer, lr_at(phase, phase_epoch + step / steps_per_epoch)))
            mix = None
            targets = labels
            if options.augment == "strong":
                images, targets, mix = mix_batch(images, labels, num_classes, mix_gen)
            batch = Batch(images.to(device, non_blocking=True).contiguous(memory_format=torch.channels_last),
                          labels.to(device), indices, targets.to(device), mix)
            boundary = (step + 1) % options.accumulation == 0 or step + 1 == steps_per_epoch
            sync = net.no_sync() if env.enabled and not boundary else _nullcontext()
            with sync:
                with autocast(precision, device):
                    value = loss(net, batch)
                total = value + anchor(model) if anchor is not None else value  # history logs the data loss
                (total / options.accumulation).backward()
            if boundary:
                if options.grad_clip:
                    torch.nn.utils.clip_grad_norm_([p for g in optimizer.param_groups for p in g["params"]],
                                                   options.grad_clip)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                if average is not None:
                    average.update(model)
            loss_sum += float(value.detach()) * len(labels)
            seen += len(labels)
            bar.update(len(labels))
            bar.set_postfix(loss=f"{loss_sum / seen:.4f}")
        bar.close()
        total_loss, total_seen = all_sum([loss_sum, float(seen)], env)
        row = {"epoch": epoch, "lr": lr, "train_loss": total_loss / max(total_seen, 1)}
        if average is not None:
            evaluated.load_state_dict(average.state)
        if val_decoded is not None and len(val_decoded):
            row.update(evaluate_decoded(evaluated, val_decoded, data_config, num_classes, device, eval_precision,
                                        options.eval_batch_size, env))
        row["seconds"] = time.perf_counter() - t0
        row["phase"] = phase.name
        epoch_seconds.append(row["seconds"])
        history.append(row)

        improved = "val_accuracy" not in row or (row["val_accuracy"], -row["val_loss"]) > (
            best["val_accuracy"], -best["val_loss"])
        if improved:
            best = {"epoch": epoch, "val_accuracy": row.get("val_accuracy", -1.0),
                    "val_loss": row.get("val_loss", float("inf"))}
            best_state = {k: v.detach().cpu().clone() for k, v in evaluated.state_dict().items()}
            bad_epochs = 0
        elif phase_index == last_phase:
            bad_epochs += 1
        if env.is_main:
            log.info("epoch %d/%d %s: lr %.3g, train_loss %.4f%s (%.1fs)%s", epoch, len(schedule), phase.name, lr,
                     row["train_loss"], f", val_loss {row['val_loss']:.4f}, val_accuracy {row['val_accuracy']:.4f}"
                     if "val_loss" in row else "", row["seconds"], " *" if improved else "")
            if writer is not None:
                for key in ("lr", "train_loss", "val_loss", "val_accuracy"):
                    if key in row:
                        writer.add_scalar(key, row[key], epoch)
            if folder is not None:
                if improved:
                    folder.mkdir(parents=True, exist_ok=True)
                    save_weights(best_state, folder / "best.safetensors")
                save_checkpoint(folder, epoch, model.state_dict(), optimizer,
                                {"epoch": epoch, "history": history, "best": best, "bad_epochs": bad_epochs,
                                 "settings": fingerprint, "ema_steps": average.steps if average else 0},
                                extra_weights={"ema": average.state} if average else None)
        barrier(env)
        if on_epoch is not None and on_epoch(row):
            stopped = "callback"
            break
        if options.patience is not None and bad_epochs >= options.patience:
            stopped = "early stopping"
            break
    else:
        if options.max_epochs and options.max_epochs < sum(p.epochs for p in phases):
            stopped = "epoch cap"

    if writer is not None:
        writer.close()
    model = model.cpu().to(memory_format=torch.contiguous_format)
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    if env.is_main:
        log.info("training %s after %d epoch(s); best epoch %d (val_accuracy %.4f)", stopped, len(history),
                 best["epoch"], best["val_accuracy"])
    return TrainResult(model=model, history=history, best_epoch=best["epoch"], stopped=stopped, skipped=skipped,
                       seconds=time.perf_counter() - start, decode_seconds=decode_seconds,
                       details={"best_epoch": best["epoch"], "stopped": stopped, "precision": precision,
                                "world_size": env.world, "decoded_from_cache": decoded.from_cache,
                                "threads": threads})


class _nullcontext:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
