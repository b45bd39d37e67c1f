"""The one object that describes a run; saved fully resolved in RUN/config.yaml."""
from __future__ import annotations

import platform
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import yaml

from .backbones.registry import DEFAULT_BACKBONE


@dataclass
class FitConfig:
    data: str
    out: str
    strategy: str = "linear-probe"
    backbone: str = DEFAULT_BACKBONE
    weights: str | None = None  # None: the registry's pretrained weights; "none": random init; or a file
    weights_sha256: str | None = None  # refuse weights whose checksum differs
    seed: int = 0
    val_fraction: float = 0.2  # held out of train when DATA has no val split
    batch_size: int = 64  # images per forward pass for extraction / evaluation
    precision: str = "auto"  # auto | bf16 | fp32
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    cache_dir: str | None = None  # feature cache; default TLEARN_CACHE or ~/.cache/tlearn
    num_workers: int | None = None  # image decoding processes; default: 1 when there are >= 2 cores
    class_weights: str | None = None  # None | auto (inverse class frequency)
    progress: bool = True
    # gradient-based strategies (finetune, gradual, lp-ft, scratch); None: the strategy's own default
    epochs: int | None = None  # epochs of the main phase(s) (finetune: after the head warm-up)
    head_epochs: int | None = None  # finetune: head-only epochs instead of the linear probe (default 0)
    lr: float | None = None  # peak learning rate of the head (lp-ft, scratch: of every group)
    lr_ratio: float | None = None  # head lr / stem lr for discriminative rates (default 10)
    optimizer: str | None = None  # adamw | sgd; None: the strategy's default
    weight_decay: float = 0.01
    train_batch_size: int = 32  # images per training step (per process under torchrun)
    augment: str | None = None  # none | crop | light | medium | strong; None: the strategy's default
    image_size: int | None = None  # train and predict at this input size instead of the backbone's
    train_size: int | None = None  # fine-tuning crops at this size (default: the backbone's, or image_size)
    unfreeze_every: int = 1  # gradual: epochs between unfreezing groups
    freeze_bn: bool | None = None  # keep BatchNorm statistics fixed; None: the strategy's default
    sampler: str | None = None  # None | balanced (draw classes equally often)
    label_smoothing: float | None = None  # None: the strategy's default
    grad_clip: float | None = 1.0  # max gradient norm; 0/None: off
    l2_sp: float | None = None  # L2-SP alpha (decay towards the pretrained weights); None: the strategy's, 0: off
    ema: float | None = None  # decay of a moving average of the weights, kept instead of the last ones
    accumulation: int = 1  # micro-batches per optimizer step
    patience: int | None = None  # early stopping: epochs without a better val accuracy
    max_seconds: float | None = None  # wall-clock budget for training
    resume: bool = False  # continue from RUN/checkpoints
    budget_minutes: float | None = None  # --strategy auto: wall-clock budget of the whole fit (default 15)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "FitConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


def library_versions() -> dict:
    import numpy
    import sklearn
    import timm
    import torch
    import torchvision

    from . import __version__

    return {
        "tlearn": __version__, "python": platform.python_version(), "torch": str(torch.__version__),
        "torchvision": str(torchvision.__version__), "timm": timm.__version__, "scikit-learn": sklearn.__version__,
        "numpy": numpy.__version__,
    }


def read_yaml(path: str | Path) -> dict:
    return yaml.safe_load(Path(path).read_text()) or {}
