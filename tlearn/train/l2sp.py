"""L2-SP (Li, Grandvalet and Davoine, 2018): a decay towards the pretrained starting point (here on top of the
optimizer's usual weight decay towards zero), so fine-tuning may take large steps yet keeps what the backbone
learned on the source domain.

penalty = alpha / 2 * sum over trainable backbone weights of (w - w_start)^2
"""
from __future__ import annotations

import torch
from torch import nn

from ..checks import check_l2_sp as check_alpha


class StartingPointPenalty:
    """Remembers the backbone's weights when created (before any training step or resumed checkpoint)."""

    def __init__(self, model: nn.Module, alpha: float):
        self.alpha = check_alpha(alpha)
        self.start = {name: p.detach().clone() for name, p in model.backbone.named_parameters()}

    def __call__(self, model: nn.Module) -> torch.Tensor:
        moved = [((p - self.start[name]) ** 2).sum() for name, p in model.backbone.named_parameters()
                 if p.requires_grad]
        if not moved:
            return torch.zeros(())
        return 0.5 * self.alpha * torch.stack(moved).sum()
