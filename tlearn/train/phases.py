"""What a strategy hands the loop: phases of training, each naming the layer groups that train and their rates."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Phase:
    """A stretch of epochs with a fixed set of trainable layer groups.

    lrs maps layer-group names (TransferModel.layer_groups(), stem -> head) to peak learning rates;
    groups not listed are frozen (no gradients, BatchNorm in inference mode). Each phase starts a fresh
    optimizer; its learning rate warms up linearly for warmup_epochs, then follows a cosine to
    final_lr_ratio * peak at the phase's end.
    """

    name: str
    epochs: int
    lrs: dict[str, float]
    warmup_epochs: float = 0.0
    final_lr_ratio: float = 0.01
    details: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.epochs < 1:
            raise ValueError(f"phase {self.name!r} needs at least one epoch, not {self.epochs}")
        if not self.lrs:
            raise ValueError(f"phase {self.name!r} trains no layer group")


def discriminative_lrs(groups: list[str], top_lr: float, ratio: float) -> dict[str, float]:
    """Learning rates growing geometrically from top_lr / ratio (stem) to top_lr (last group, the head)."""
    n = len(groups)
    if n == 1:
        return {groups[0]: top_lr}
    return {g: top_lr * ratio ** (-(n - 1 - i) / (n - 1)) for i, g in enumerate(groups)}


def lr_at(phase: Phase, progress: float) -> float:
    """Multiplier of the peak rate at progress (epochs into the phase, fractional)."""
    import math

    if phase.warmup_epochs > 0 and progress < phase.warmup_epochs:
        return max(progress / phase.warmup_epochs, 0.01)
    span = max(phase.epochs - phase.warmup_epochs, 1e-9)
    t = min(max((progress - phase.warmup_epochs) / span, 0.0), 1.0)
    return phase.final_lr_ratio + (1 - phase.final_lr_ratio) * 0.5 * (1 + math.cos(math.pi * t))
