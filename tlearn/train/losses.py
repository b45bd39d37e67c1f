"""The loss is pluggable: the loop hands each batch to a LossFn, so distillation can add teacher targets."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class Batch:
    """One training micro-batch.

    indices are positions in the sample list given to train() (stable across epochs and processes), so a
    loss can look up per-sample data such as cached teacher outputs. targets are the labels as the loss
    should see them: class indices, or probabilities (N, C) when mixup/cutmix mixed the batch; then
    mix = (perm, lam) says image i is lam * image i + (1 - lam) * image perm[i] (cutmix: by area), and partners
    holds the sample index of each image's partner. A batch too large for memory reaches the loss in
    micro-batches (tlearn.train.memory): perm then indexes the whole batch, partners is this part's.
    """

    images: torch.Tensor
    labels: torch.Tensor
    indices: torch.Tensor
    targets: torch.Tensor
    mix: tuple[torch.Tensor, float] | None = None
    partners: torch.Tensor | None = None


class LossFn(Protocol):
    def __call__(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        """Scalar loss to minimise; model is the (possibly DDP-wrapped) network to call on batch.images."""
        ...


class CrossEntropy:
    """Cross-entropy with optional class weights and label smoothing; accepts hard or mixed soft targets."""

    def __init__(self, class_weights: torch.Tensor | None = None, label_smoothing: float = 0.0):
        self.class_weights = class_weights
        self.label_smoothing = label_smoothing

    def __call__(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        logits = model(batch.images).float()
        weight = None if self.class_weights is None else self.class_weights.to(logits.device)
        return F.cross_entropy(logits, batch.targets, weight=weight, label_smoothing=self.label_smoothing)


class BinaryCrossEntropy:
    """Multi-label loss: binary cross-entropy of each label's logit (a sigmoid head, no softmax).

    targets is the (n, labels) 0/1 matrix of the samples given to train(), looked up by batch.indices; a batch
    that mixup/cutmix mixed gets the same mix of its images' label vectors. pos_weight (per label) weighs
    positives, e.g. negatives/positives for --class-weights auto.
    """

    def __init__(self, targets, pos_weight: torch.Tensor | None = None):
        self.targets = torch.as_tensor(targets, dtype=torch.float32)
        self.pos_weight = pos_weight

    def __call__(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        logits = model(batch.images).float()
        y = self.targets[batch.indices.cpu()].to(logits.device)
        if batch.mix is not None:
            perm, lam = batch.mix
            partner = (self.targets[batch.partners.cpu()].to(y.device) if batch.partners is not None
                       else y[perm.to(y.device)])
            y = lam * y + (1 - lam) * partner
        weight = None if self.pos_weight is None else self.pos_weight.to(logits.device)
        return F.binary_cross_entropy_with_logits(logits, y, pos_weight=weight)


def positive_weights(targets) -> torch.Tensor:
    """negatives / positives per label (1 for a label without positives), capped at 100."""
    y = torch.as_tensor(targets, dtype=torch.float32)
    positives = y.sum(0)
    ratio = (len(y) - positives) / positives.clamp(min=1)
    return torch.where(positives > 0, ratio, torch.ones_like(ratio)).clamp(max=100.0)


def inverse_frequency_weights(labels: list[int], num_classes: int) -> torch.Tensor:
    """Class weights n / (k * count): a balanced set gets all ones; absent classes get weight 0."""
    counts = torch.bincount(torch.tensor(labels, dtype=torch.long), minlength=num_classes).float()
    present = counts > 0
    weights = torch.zeros(num_classes)
    weights[present] = counts.sum() / (present.sum() * counts[present])
    return weights
