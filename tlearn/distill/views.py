"""The teacher judges the very batch the student trains on: the student's (augmented, normalised) images
turned into the teacher's input size and normalisation."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..data.transforms import DataConfig


def _stats(cfg: DataConfig, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    mean = torch.tensor(cfg.mean, dtype=like.dtype, device=like.device).view(1, 3, 1, 1)
    std = torch.tensor(cfg.std, dtype=like.dtype, device=like.device).view(1, 3, 1, 1)
    return mean, std


def teacher_view(images: torch.Tensor, student_cfg: DataConfig, teacher_cfg: DataConfig) -> torch.Tensor:
    """Normalised student batch (n, 3, s, s) -> the same pixels at the teacher's size and normalisation.

    Resizing is bilinear with antialiasing (a 32 px student batch is upsampled for a 224 px teacher,
    exactly as the teacher's own eval transform upsamples a 32 px image).
    """
    x = images.float()
    mean, std = _stats(student_cfg, x)
    x = (x * std + mean).clamp(0.0, 1.0)
    size = teacher_cfg.input_size
    if x.shape[-2:] != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    mean, std = _stats(teacher_cfg, x)
    return ((x - mean) / std).contiguous(memory_format=torch.channels_last)
