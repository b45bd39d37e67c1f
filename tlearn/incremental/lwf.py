"""Learning without Forgetting (Li and Hoiem, 2016): the old model's outputs on the new images as soft targets.

loss = CE(model(x), label) + weight * T^2 * KL(softmax(old(x) / T) || softmax(model(x)[:, :old] / T))

The old model sees the very (augmented) batch the new one trains on; its classes are the first `old` outputs.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..distill.loss import soft_loss
from ..train.losses import Batch


class LwfLoss:
    """The training loop's loss hook (tlearn.train LossFn) for an extension of a fine-tuned run."""

    def __init__(self, old_model: nn.Module, old_classes: int, weight: float, temperature: float,
                 label_smoothing: float = 0.0):
        self.old = old_model.eval()
        for p in self.old.parameters():
            p.requires_grad_(False)
        self.old_classes, self.weight, self.temperature = old_classes, weight, temperature
        self.label_smoothing = label_smoothing

    def __call__(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        logits = model(batch.images).float()
        loss = F.cross_entropy(logits, batch.targets, label_smoothing=self.label_smoothing)
        if self.weight > 0:
            with torch.no_grad():
                old_logits = self.old.to(batch.images.device)(batch.images).float()
            loss = loss + self.weight * soft_loss(logits[:, : self.old_classes], old_logits, self.temperature)
        return loss
