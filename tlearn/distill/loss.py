"""Hinton knowledge distillation: soft teacher targets at a temperature, mixed with the hard labels.

loss = alpha * T^2 * KL(softmax(teacher / T) || softmax(student / T)) + (1 - alpha) * CE(student, label)

The T^2 factor keeps the soft term's gradients at the same scale whatever the temperature (Hinton et al.,
2015, "Distilling the knowledge in a neural network"). Samples with label -1 (unlabeled images) contribute
only the soft term, so images without labels still teach the student through the teacher.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..checks import check_alpha, check_feature_weight, check_temperature
from ..constants import DEFAULT_ALPHA, DEFAULT_TEMPERATURE
from .hint import hint_loss
from .views import ViewMixer, convert_view


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
    """Batch mean of alpha * soft term + (1 - alpha) * cross-entropy; labels of -1 get the soft term only.

    labels may also be class probabilities (n, C), e.g. mixup targets; then every row is labelled.
    """
    a = check_alpha(alpha)
    soft = soft_loss(student_logits, teacher_logits, temperature, reduction="none")
    if labels.ndim == 2:
        hard = F.cross_entropy(student_logits.float(), labels.float(), weight=class_weights, reduction="none")
        return (a * soft + (1.0 - a) * hard).mean()
    labelled = labels >= 0
    hard = torch.zeros_like(soft)
    if a < 1.0 and bool(labelled.any()):
        hard[labelled] = F.cross_entropy(student_logits[labelled].float(), labels[labelled], weight=class_weights,
                                         reduction="none")
    return (a * soft + (1.0 - a) * hard).mean()


class DistillationLoss:
    """The training loop's loss hook (tlearn.train LossFn): Hinton KD for each batch.

    batch.images are prepared for `view` (default: the student's own config). Teacher outputs come from
    `cached` (rows aligned with the training samples, looked up by batch.indices) when the student sees
    un-augmented images; with augmentation (live=True) the teacher runs on the very crop the student sees,
    each model getting it at its own size (views.convert_view).

    feature_weight > 0 adds hint.hint_loss: the student (a hint.HintedStudent) also learns to reproduce the
    teacher's pooled features of the batch (the teacher then always runs live).

    mixer (a views.ViewMixer; consistent teaching, Beyer et al. 2022) mixes each batch's view before either model
    sees it: the teacher runs live on the identical mixed pixels and the loss is the soft term alone (alpha must
    be 1), so labels are never read.
    """

    def __init__(self, teacher_model: nn.Module, student_cfg, teacher_cfg, temperature: float = DEFAULT_TEMPERATURE,
                 alpha: float = DEFAULT_ALPHA, cached: torch.Tensor | None = None, live: bool = False,
                 teacher_precision: str = "fp32", view=None, feature_weight: float = 0.0,
                 mixer: ViewMixer | None = None):
        if not live and cached is None and not feature_weight and mixer is None:
            raise ValueError("DistillationLoss needs cached teacher outputs or live=True")
        self.teacher = teacher_model.eval()
        self.student_cfg, self.teacher_cfg, self.view = student_cfg, teacher_cfg, view or student_cfg
        self.temperature, self.alpha = check_temperature(temperature), check_alpha(alpha)
        if mixer is not None and self.alpha != 1.0:
            raise ValueError("a mixed view has no single label: mixing needs alpha 1 (soft targets only)")
        self.feature_weight = check_feature_weight(feature_weight)
        self.mixer = mixer
        self.cached, self.teacher_precision = cached, teacher_precision
        self.live = live or self.feature_weight > 0 or mixer is not None

    def teacher_outputs(self, batch, images: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(logits, pooled features or None when they come from the cache) for `images` (default batch.images)."""
        images = batch.images if images is None else images
        device = images.device
        if not self.live:
            return self.cached[batch.indices.cpu()].to(device), None
        from ..device import autocast

        self.teacher.to(device)
        with torch.inference_mode(), autocast(self.teacher_precision, device):
            features = self.teacher.backbone(convert_view(images, self.view, self.teacher_cfg))
            logits = self.teacher.classify(features)
        return logits.float().clone(), features.float().clone()  # normal tensors again, usable in autograd

    def __call__(self, model: nn.Module, batch) -> torch.Tensor:
        images = batch.images if self.mixer is None else self.mixer(batch.images)[0]
        x = convert_view(images, self.view, self.student_cfg)
        teacher_logits, teacher_features = self.teacher_outputs(batch, images)
        if self.mixer is not None:
            def loss(student_logits):  # soft targets only: no label term exists to weigh
                return soft_loss(student_logits.float(), teacher_logits, self.temperature)
        else:
            labels = batch.targets if batch.mix is not None else batch.labels

            def loss(student_logits):
                return distillation_loss(student_logits.float(), teacher_logits, labels, self.temperature, self.alpha)
        if not self.feature_weight:
            return loss(model(x))
        logits, projected = model(x, with_hint=True)
        return loss(logits) + self.feature_weight * hint_loss(projected, teacher_features)


class LabelsOnlyLoss:
    """Cross-entropy on the labels for a student fed batches prepared for `view`: the student-alone
    baseline trains on exactly the crops the distilled student sees, only without the teacher. With a mixer
    (consistent teaching) it mixes the view the same way and the labels with it (mixup)."""

    def __init__(self, student_cfg, view=None, mixer: ViewMixer | None = None, num_classes: int | None = None):
        if mixer is not None and not num_classes:
            raise ValueError("mixing the labels needs num_classes")
        self.student_cfg, self.view, self.mixer, self.num_classes = student_cfg, view or student_cfg, mixer, num_classes

    def __call__(self, model: nn.Module, batch) -> torch.Tensor:
        images, targets = batch.images, batch.targets
        if self.mixer is not None:
            images, perm, lam = self.mixer(images)
            onehot = F.one_hot(batch.labels, self.num_classes).float()
            targets = lam * onehot + (1.0 - lam) * onehot[perm.to(onehot.device)]
        logits = model(convert_view(images, self.view, self.student_cfg)).float()
        return F.cross_entropy(logits, targets)


class StoredViewLoss:
    """The loss hook for training on stored teacher views (stored_views.StoredViewImages): batch.indices are rows of
    `targets` (n * K, C), the teacher's probabilities on the very view each image is; no teacher runs.

    With a mixer the batch is mixed as under consistent teaching and the target is the same mix of the two stored
    distributions, lam * p(a) + (1 - lam) * p(b) (stored_views.mixing_fidelity measures how close that is to the
    teacher's own output on the mixed view); soft targets only then (alpha 1). Without one: Hinton's loss, the
    labels weighted 1 - alpha (label -1: the soft term only).
    """

    def __init__(self, targets: torch.Tensor, temperature: float = DEFAULT_TEMPERATURE, alpha: float = DEFAULT_ALPHA,
                 mixer: ViewMixer | None = None):
        self.targets = targets.float()
        self.temperature, self.alpha = check_temperature(temperature), check_alpha(alpha)
        if mixer is not None and self.alpha != 1.0:
            raise ValueError("a mixed view has no single label: mixing needs alpha 1 (soft targets only)")
        self.mixer = mixer

    def __call__(self, model: nn.Module, batch) -> torch.Tensor:
        images = batch.images
        probs = self.targets[batch.indices.cpu()].to(images.device)
        if self.mixer is not None:
            images, perm, lam = self.mixer(images)
            probs = lam * probs + (1.0 - lam) * probs[perm.to(probs.device)]
        teacher_logits = torch.log(probs.clamp_min(1e-8))  # softmax(log p / T) = p^(1/T), renormalised
        logits = model(images).float()
        if self.mixer is not None:
            return soft_loss(logits, teacher_logits, self.temperature)
        return distillation_loss(logits, teacher_logits, batch.labels, self.temperature, self.alpha)
