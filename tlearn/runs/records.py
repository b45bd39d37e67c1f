"""The record of a trained model's phases and loop options in config.yaml: one shape for every job (fit's
strategies, auto candidates, distillation and its student alone, extensions)."""
from __future__ import annotations

from collections.abc import Sequence

from ..train import Phase, TrainOptions

# options that say where or how visibly the loop ran, not what it learned: left out of the record
UNRECORDED_OPTIONS = ("progress", "cache_dir", "checkpoint_dir")


def phase_record(phases: Sequence[Phase]) -> list[dict]:
    """config.yaml's strategy.phases: name, epochs, learning rate per layer group (3 significant digits), warm-up."""
    return [{"name": p.name, "epochs": p.epochs, "lrs": {g: float(f"{lr:.3g}") for g, lr in p.lrs.items()},
             "warmup_epochs": p.warmup_epochs} for p in phases]


def options_record(options: TrainOptions) -> dict:
    """config.yaml's strategy.train_options: every loop option except where and how visibly it ran."""
    return {k: v for k, v in options.to_dict().items() if k not in UNRECORDED_OPTIONS}
