"""DistillConfig: everything that decides a distillation run; saved resolved in RUN/config.yaml (torch-free).

It builds on RunOptions (data, out, seed, batch sizes, device, ...); the fields redefined here keep their place
but take distillation's own defaults and help.
"""
from __future__ import annotations

from dataclasses import dataclass

from .. import checks
from ..config import RunOptions, option
from ..constants import AUGMENT_PRESETS, DEFAULT_ALPHA, DEFAULT_BATCH_SIZE, DEFAULT_STUDENT, DEFAULT_TEMPERATURE

CROPS = ("student", "teacher")


@dataclass
class DistillConfig(RunOptions):
    teacher: str = option(help="a tlearn run directory (e.g. from `tlearn fit`)", kw_only=True)
    out: str = option(help="student run directory to write")
    data: str = option(help="data folder or CSV manifest with the teacher's classes", positional=True)
    batch_size: int = option(DEFAULT_BATCH_SIZE, "images per forward pass for teacher and evaluation",
                             check=checks.at_least(1, "--batch-size"))
    precision: str = option("auto", "teacher inference", choices=("auto", "bf16", "fp32"))
    cache_dir: str | None = option(None, "cache folder (default TLEARN_CACHE or ~/.cache/tlearn)")
    student: str = option(DEFAULT_STUDENT, f"student backbone: a registry name (default {DEFAULT_STUDENT}, "
                                           "~0.58 M params) or timm:<name>")
    student_weights: str | None = option("none", "none (random init, default), pretrained (the registry's), or a "
                                                  "weights file")
    student_size: int | None = option(None, "student input size in px (default: the student's own, 32 for "
                                            "compact_cnn)", check=checks.at_least(8, "--student-size", " px"))
    temperature: float = option(DEFAULT_TEMPERATURE, "softening temperature T", check=checks.check_temperature)
    alpha: float = option(DEFAULT_ALPHA, "weight of the teacher's soft targets (1 - alpha on the labels)",
                          check=checks.check_alpha)
    # weight of the feature hint (hint.py): the student also reproduces the teacher's pooled features; 0: off
    feature_weight: float = option(0.0, "also teach the teacher's pooled features (a FitNets hint through a "
                                        "training-only projection, weight BETA, e.g. 1); 0: off",
                                   check=checks.check_feature_weight, metavar="BETA")
    epochs: int = option(30, check=checks.at_least(1, "--epochs"))
    lr: float = option(3e-3, "AdamW peak learning rate (warm-up, cosine decay)")
    weight_decay: float = option(0.05)
    train_batch_size: int = option(64, check=checks.at_least(1, "--train-batch-size"))
    # none/flip use cached teacher outputs, others a live teacher (docs/results.md#distillation)
    augment: str = option("crop", "student augmentation preset, as for fit (default crop: random crops, no flip). "
                                  "With augmentation the teacher judges each augmented batch; with none or flip its "
                                  "outputs are cached. flip/light/medium/strong mirror images: not for data where "
                                  "left/right matters (traffic signs)", choices=AUGMENT_PRESETS)
    # crops cut at the "student"'s size (teacher sees them resized) or the "teacher"'s: docs/results.md#distillation
    crops: str = option("student", "resolution augmented crops are cut at: the student's (the teacher sees them "
                                   "resized to its size; default) or the teacher's (the student gets them "
                                   "downsampled, the teacher at full detail)", choices=CROPS)
    ema: float | None = option(None, "keep a moving average of the student's weights (e.g. 0.98), for both "
                                     "students", check=checks.check_decay, metavar="DECAY")
    unlabeled: str | None = option(None, "images without labels (recursive), used through the teacher's soft "
                                         "targets", metavar="DIR")
    student_alone: bool = option(False, "also train the same student without the teacher (RUN/student-alone) to "
                                        "measure the gain")
    latency_repeats: int = option(20, "timed runs per latency figure")
    latency_threads: int = option(1, "CPU threads for the latency measurement")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.augment == "strong" and self.unlabeled:
            from ..errors import TlearnError

            raise TlearnError("--augment strong mixes labels (mixup/cutmix) and cannot be used with --unlabeled; "
                              "use light or medium.")
