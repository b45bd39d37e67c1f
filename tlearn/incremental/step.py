"""What one extension step (analytic or fine-tuned) hands back to `extend` to be written as a run."""
from __future__ import annotations

from dataclasses import dataclass, field

from ..backbones.model import TransferModel


@dataclass
class StepResult:
    model: TransferModel
    history: list[dict]
    details: dict
    train_metrics: dict | None = None
    skipped: list = field(default_factory=list)
    files: dict = field(default_factory=dict)
