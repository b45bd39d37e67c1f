"""DistillConfig: everything that decides a distillation run; saved resolved in RUN/config.yaml."""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from .loss import DEFAULT_ALPHA, DEFAULT_TEMPERATURE

DEFAULT_STUDENT = "compact_cnn"


@dataclass
class DistillConfig:
    data: str
    teacher: str  # a tlearn run directory
    out: str
    student: str = DEFAULT_STUDENT  # any registry backbone or timm:<name>
    student_weights: str | None = "none"  # none: random init; pretrained: the registry's; or a file
    student_size: int | None = None  # student input size (px); default: the student backbone's own
    temperature: float = DEFAULT_TEMPERATURE
    alpha: float = DEFAULT_ALPHA  # weight of the teacher's soft targets; 1 - alpha on the labels
    epochs: int = 30
    lr: float = 3e-3
    weight_decay: float = 0.05
    train_batch_size: int = 64
    # tlearn.data.augment preset; none/flip use cached teacher outputs, others a live teacher (docs/results.md)
    augment: str = "crop"
    # crops cut at the "student"'s size (teacher sees them resized) or the "teacher"'s: docs/results.md#distillation
    crops: str = "student"
    # weight of the feature hint (hint.py): the student also reproduces the teacher's pooled features; 0: off
    feature_weight: float = 0.0
    ema: float | None = None  # moving average of the student's weights (both students), see TrainOptions.ema
    unlabeled: str | None = None  # folder of images without labels, taught through the teacher alone
    student_alone: bool = False  # also train the same student without the teacher, to measure the gain
    seed: int = 0
    val_fraction: float = 0.2
    batch_size: int = 64  # images per forward pass for teacher outputs and evaluation
    precision: str = "auto"  # teacher inference: auto | bf16 | fp32 (the student trains in fp32)
    device: str = "auto"
    cache_dir: str | None = None
    num_workers: int | None = None
    latency_repeats: int = 20
    latency_threads: int = 1
    progress: bool = True

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "DistillConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})
