"""Hyper-parameters of the training loop (everything except what trains: that is the strategy's Phase list)."""
from __future__ import annotations

from dataclasses import asdict, dataclass

from ..data.augment import PRESETS as AUGMENT_PRESETS
from .ema import check_decay
from .l2sp import check_alpha as check_l2_sp


@dataclass
class TrainOptions:
    batch_size: int = 32  # images per optimizer micro-step (per process under DDP)
    eval_batch_size: int = 64
    optimizer: str = "adamw"  # adamw | sgd
    weight_decay: float = 0.01  # not applied to biases and normalisation weights
    momentum: float = 0.9  # sgd only
    label_smoothing: float = 0.1
    grad_clip: float | None = 1.0  # max global gradient norm; None: no clipping
    accumulation: int = 1  # micro-batches per optimizer step
    augment: str = "light"  # a tlearn.data.augment preset: none | crop | light | medium | strong
    class_weights: str | None = None  # None | auto: loss weights 1/class frequency
    sampler: str | None = None  # None | balanced: draw classes equally often
    freeze_bn: bool = False  # BatchNorm statistics fixed everywhere (small batches)
    l2_sp: float | None = None  # alpha of L2-SP: decay of the backbone towards its pretrained weights; None: off
    ema: float | None = None  # decay of a moving average of the weights, evaluated and kept instead; None: off
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
    tensorboard: bool = True  # log to checkpoint_dir/../tensorboard when tensorboard is installed

    def __post_init__(self):
        checks = {
            "optimizer": (self.optimizer, ("adamw", "sgd")),
            "augment": (self.augment, AUGMENT_PRESETS),
            "class_weights": (self.class_weights, (None, "auto")),
            "sampler": (self.sampler, (None, "balanced")),
        }
        for name, (value, allowed) in checks.items():
            if value not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, not {value!r}")
        if self.ema is not None:
            check_decay(self.ema)
        if self.l2_sp is not None:
            check_l2_sp(self.l2_sp)
        if self.batch_size < 1 or self.accumulation < 1:
            raise ValueError("batch_size and accumulation must be >= 1")

    def to_dict(self) -> dict:
        return asdict(self)
