"""Hyper-parameters of the training loop (everything except what trains: that is the strategy's Phase list)."""
from __future__ import annotations

from dataclasses import asdict, dataclass

from ..checks import at_least, check_decay, check_l2_sp, check_memory_budget, one_of
from ..constants import (AUGMENT_PRESETS, DEFAULT_BATCH_SIZE, DEFAULT_GRAD_CLIP, DEFAULT_TRAIN_BATCH_SIZE,
                         DEFAULT_WEIGHT_DECAY, OPTIMIZERS)
from ..strategy_defaults import LOOP
from .selection import KEEP_RULES


@dataclass
class TrainOptions:
    """The loop's settings; the hyper-parameters a strategy also sets default to tlearn.strategy_defaults.LOOP."""

    batch_size: int = DEFAULT_TRAIN_BATCH_SIZE  # images per optimizer micro-step (per process under DDP)
    eval_batch_size: int = DEFAULT_BATCH_SIZE
    optimizer: str = LOOP.optimizer  # adamw | sgd
    weight_decay: float = DEFAULT_WEIGHT_DECAY  # not applied to biases and normalisation weights
    momentum: float = 0.9  # sgd only
    label_smoothing: float = LOOP.label_smoothing
    grad_clip: float | None = DEFAULT_GRAD_CLIP  # max global gradient norm; None: no clipping
    accumulation: int = 1  # micro-batches per optimizer step
    micro_batch: int | None = None  # images per forward/backward pass (a batch is taken in parts); None: planned
    memory_budget: float | None = None  # GB for the process and its workers; sets micro_batch when that is None
    augment: str = LOOP.augment  # a tlearn.data.augment preset: none | crop | light | medium | strong
    class_weights: str | None = None  # None | auto: loss weights 1/class frequency
    sampler: str | None = None  # None | balanced: draw classes equally often
    freeze_bn: bool = LOOP.freeze_bn  # BatchNorm statistics fixed everywhere (small batches)
    l2_sp: float | None = LOOP.l2_sp  # alpha of L2-SP: decay of the backbone towards its pretrained weights; None: off
    ema: float | None = None  # decay of a moving average of the weights, evaluated and kept instead; None: off
    keep_epoch: str = "best"  # best | one-se: which epoch's weights are kept (tlearn.train.selection)
    patience: int | None = None  # stop after this many epochs without a better val score (final phase)
    max_seconds: float | None = None  # wall-clock budget; no epoch starts that would overrun it
    max_epochs: int | None = None  # cap on total epochs over all phases
    seed: int = 0
    precision: str = "auto"  # training precision: auto = bf16 on CUDA, fp32 on CPU (bf16 backward is slow there)
    eval_precision: str = "auto"
    device: str = "auto"
    threads: int | None = None  # torch CPU threads; None: the cores per process, 1 on an oversubscribed machine
    num_workers: int | None = None  # augmentation processes; None: one when >= 2 cores
    cache_dir: str | None = None  # decoded-image cache; None: TLEARN_CACHE or ~/.cache/tlearn
    progress: bool = True
    checkpoint_dir: str | None = None  # atomic checkpoint every epoch + best weights; None: none
    resume: bool = False  # continue from checkpoint_dir's last checkpoint

    def __post_init__(self):
        """The same checks as the command-line options' (tlearn.checks), for callers of the loop's API."""
        one_of(OPTIMIZERS, "optimizer")(self.optimizer)
        one_of(AUGMENT_PRESETS, "augment")(self.augment)
        one_of((None, "auto"), "class_weights")(self.class_weights)
        one_of((None, "balanced"), "sampler")(self.sampler)
        one_of(KEEP_RULES, "keep_epoch")(self.keep_epoch)
        if self.ema is not None:
            check_decay(self.ema)
        if self.l2_sp is not None:
            check_l2_sp(self.l2_sp)
        at_least(1, "batch_size")(self.batch_size)
        at_least(1, "accumulation")(self.accumulation)
        if self.micro_batch is not None:
            at_least(1, "micro_batch")(self.micro_batch)
        if self.memory_budget is not None:
            check_memory_budget(self.memory_budget)

    def to_dict(self) -> dict:
        return asdict(self)
