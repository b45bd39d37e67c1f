"""Feature distillation ("hints", Romero et al. 2015, FitNets): the student's pooled features, through a
linear projection, learn to reproduce the teacher's pooled features.

With few classes the teacher's logits carry little per image (5 numbers on flowers); its penultimate features
(1280 for EfficientNet-Lite0) describe each crop far more richly. The projection exists only while training:
the saved student is the plain backbone + head, as fast as without hints.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..backbones.model import TransferModel


class HintedStudent(TransferModel):
    """A TransferModel with a training-only projection `hint` (student features -> teacher feature space)."""

    def __init__(self, student: TransferModel, teacher_dim: int):
        super().__init__(student.backbone, student.head.in_features, student.head.out_features,
                         student.architecture)
        self.head = student.head  # shares the student's modules: training this trains the student
        self.hint = nn.Linear(student.head.in_features, teacher_dim)

    def forward(self, x: torch.Tensor, with_hint: bool = False):
        features = self.backbone(x)
        logits = self.head(features)
        return (logits, self.hint(features)) if with_hint else logits

    def layer_groups(self) -> list[tuple[str, list[nn.Parameter]]]:
        return super().layer_groups() + [("hint", list(self.hint.parameters()))]

    def plain(self) -> TransferModel:
        """The deployable student: backbone + head, without the projection."""
        model = TransferModel(self.backbone, self.head.in_features, self.head.out_features, self.architecture)
        model.head = self.head
        return model


def hint_loss(projected: torch.Tensor, teacher_features: torch.Tensor) -> torch.Tensor:
    """Mean squared error against the teacher's features centred over the batch and scaled to unit mean
    square: what tells these images apart, not the activations every image shares. One scale for all
    features keeps their relative weight: near-constant features stay near zero instead of being blown up to
    unit variance (in bf16 their spread is rounding noise). A batch of one has no spread and gives 0."""
    t = teacher_features.float()
    if t.shape[0] < 2:
        return projected.sum() * 0.0
    t = t - t.mean(dim=0)
    t = t / t.pow(2).mean().sqrt().clamp_min(1e-6)
    return F.mse_loss(projected.float(), t)
