"""Teacher and student judge the very same augmented crop, each at its own size and normalisation.

Training images are decoded and augmented once, and the loss turns that batch into each model's input
(convert_view). By default the crops are cut at the student's size and the teacher judges them resized to its
own (teacher_view). With `--crops teacher` they are cut at the larger of the two training sizes (paired_view),
so the teacher sees a 64 px student's crop at full detail rather than upsampled, which costs it accuracy
(benchmarks/teacher_view_accuracy.py; docs/results.md#distillation).
"""
from __future__ import annotations

from dataclasses import replace

import torch
import torch.nn.functional as F

from ..data.transforms import DataConfig


def _stats(cfg: DataConfig, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    mean = torch.tensor(cfg.mean, dtype=like.dtype, device=like.device).view(1, 3, 1, 1)
    std = torch.tensor(cfg.std, dtype=like.dtype, device=like.device).view(1, 3, 1, 1)
    return mean, std


def training_view(cfg: DataConfig) -> DataConfig:
    """cfg with input_size set to the size it trains at (what a random crop for it should measure)."""
    return replace(cfg, input_size=cfg.training_size, train_size=None)


def paired_view(student_cfg: DataConfig, teacher_cfg: DataConfig) -> DataConfig:
    """The DataConfig to decode and augment training images with: the larger of the two training views."""
    student, teacher = training_view(student_cfg), training_view(teacher_cfg)
    return teacher if teacher.input_size >= student.input_size else student


def convert_view(images: torch.Tensor, source: DataConfig, target: DataConfig) -> torch.Tensor:
    """Normalised batch (n, 3, s, s) made for `source` -> the same pixels at target.training_size, normalised
    for `target`. Resizing is bilinear with antialiasing; a batch that needs no change is returned as is."""
    size = target.training_size
    same_stats = tuple(source.mean) == tuple(target.mean) and tuple(source.std) == tuple(target.std)
    if same_stats and images.shape[-2:] == (size, size):
        return images
    x = images.float()
    mean, std = _stats(source, x)
    x = (x * std + mean).clamp(0.0, 1.0)
    if x.shape[-2:] != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    mean, std = _stats(target, x)
    return ((x - mean) / std).contiguous(memory_format=torch.channels_last)


def teacher_view(images: torch.Tensor, student_cfg: DataConfig, teacher_cfg: DataConfig) -> torch.Tensor:
    """A student batch at the teacher's input size and normalisation (benchmarks/teacher_view_accuracy.py
    measures what the teacher loses when it judges the student's pixels instead of its own)."""
    return convert_view(images, student_cfg, replace(teacher_cfg, train_size=None))


class ViewMixer:
    """Mixup on the shared view (consistent teaching): image i becomes lam * image i + (1 - lam) * image perm[i],
    one lam ~ Beta(alpha, alpha) per batch. Mixed before either model sees it, so teacher and student judge the
    identical mixed pixels; no labels are needed. Seeded, so a run repeats."""

    def __init__(self, alpha: float, seed: int = 0):
        if alpha <= 0:
            raise ValueError(f"mixup alpha must be positive, not {alpha!r}")
        self.beta = torch.distributions.Beta(torch.tensor(float(alpha)), torch.tensor(float(alpha)))
        self.generator = torch.Generator().manual_seed(int(seed))

    def __call__(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, float]:
        """(mixed images, perm, lam)."""
        perm = torch.randperm(len(images), generator=self.generator)
        # torch's Beta sampler takes no generator: draw it under a seed taken from ours
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(torch.randint(2**31 - 1, (), generator=self.generator)))
            lam = float(self.beta.sample())
        mixed = lam * images + (1.0 - lam) * images[perm.to(images.device)]
        return mixed, perm, lam
