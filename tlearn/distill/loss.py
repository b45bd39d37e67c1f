"""Hinton knowledge distillation: soft teacher targets at a temperature, mixed with the hard labels.

loss = alpha * T^2 * KL(softmax(teacher / T) || softmax(student / T)) + (1 - alpha) * CE(student, label)

The T^2 factor keeps the soft term's gradients at the same scale whatever the temperature (Hinton et al.,
2015, "Distilling the knowledge in a neural network"). Samples with label -1 (unlabeled images) contribute
only the soft term, so images without labels still teach the student through the teacher.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

DEFAULT_TEMPERATURE = 4.0
DEFAULT_ALPHA = 0.9


def check_temperature(temperature: float) -> float:
    """A usable temperature, or a ValueError that names the setting."""
    t = float(temperature)
    if not math.isfinite(t) or t <= 0:
        raise ValueError(f"--temperature must be a positive number (typically 1-10), not {temperature!r}.")
    return t


def check_alpha(alpha: float) -> float:
    a = float(alpha)
    if not 0.0 <= a <= 1.0:
        raise ValueError(f"--alpha must be between 0 (labels only) and 1 (teacher only), not {alpha!r}.")
    return a


def soft_targets(teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """The teacher's class distribution softened by the temperature (T > 1 reveals its 'dark knowledge')."""
    return F.softmax(teacher_logits.float() / check_temperature(temperature), dim=1)


def soft_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float,
              reduction: str = "mean") -> torch.Tensor:
    """T^2 * KL(teacher_T || student_T) per sample ('none') or averaged over the batch ('mean')."""
    t = check_temperature(temperature)
    log_p_student = F.log_softmax(student_logits.float() / t, dim=1)
    log_p_teacher = F.log_softmax(teacher_logits.float() / t, dim=1)
    kl = (log_p_teacher.exp() * (log_p_teacher - log_p_student)).sum(dim=1) * (t * t)
    return kl.mean() if reduction == "mean" else kl


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor,
                      temperature: float = DEFAULT_TEMPERATURE, alpha: float = DEFAULT_ALPHA,
                      class_weights: torch.Tensor | None = None) -> torch.Tensor:
    """Batch mean of alpha * soft term + (1 - alpha) * cross-entropy; labels of -1 get the soft term only."""
    a = check_alpha(alpha)
    soft = soft_loss(student_logits, teacher_logits, temperature, reduction="none")
    labelled = labels >= 0
    hard = torch.zeros_like(soft)
    if a < 1.0 and bool(labelled.any()):
        hard[labelled] = F.cross_entropy(student_logits[labelled].float(), labels[labelled], weight=class_weights,
                                         reduction="none")
    return (a * soft + (1.0 - a) * hard).mean()
