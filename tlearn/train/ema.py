"""An exponential moving average of the weights (Polyak averaging), updated after every optimizer step.

With few images the last steps of fine-tuning wander around a minimum; their average usually generalises
better than any single step (timm's ModelEma, SWA). The loop evaluates and keeps the averaged weights.
"""
from __future__ import annotations

import torch
from torch import nn

from ..checks import check_decay


class WeightAverage:
    def __init__(self, model: nn.Module, decay: float):
        self.decay, self.steps = check_decay(decay), 0
        self.state = {k: v.detach().clone() for k, v in model.state_dict().items()}

    def current_decay(self) -> float:
        """Warms up as (1 + t) / (10 + t): the first steps are not anchored to the starting weights."""
        return min(self.decay, (1 + self.steps) / (10 + self.steps))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.steps += 1
        decay = self.current_decay()
        for name, value in model.state_dict().items():
            average = self.state[name]
            if average.is_floating_point():
                average.lerp_(value.detach().to(average.device), 1.0 - decay)
            else:  # step counters of BatchNorm
                average.copy_(value)

    def load(self, state: dict[str, torch.Tensor], steps: int) -> None:
        for name, value in state.items():
            self.state[name].copy_(value)
        self.steps = steps
