"""Per-phase optimizer over the trainable layer groups, and which groups train."""
from __future__ import annotations

import torch
from torch import nn

from .options import TrainOptions
from .phases import Phase


def set_trainable(groups: list[tuple[str, list[nn.Parameter]]], phase: Phase) -> None:
    """requires_grad on exactly the phase's groups; frozen groups cost no gradient memory or time."""
    unknown = set(phase.lrs) - {name for name, _ in groups}
    if unknown:
        raise ValueError(f"phase {phase.name!r} names unknown layer groups {sorted(unknown)}; "
                         f"the model has {[name for name, _ in groups]}")
    for name, params in groups:
        for p in params:
            p.requires_grad_(name in phase.lrs)


def build_optimizer(groups: list[tuple[str, list[nn.Parameter]]], phase: Phase,
                    options: TrainOptions) -> torch.optim.Optimizer:
    """One param group per (layer group, decay or not); each remembers its peak lr as 'peak_lr'."""
    param_groups = []
    for name, params in groups:
        if name not in phase.lrs:
            continue
        decay = [p for p in params if p.ndim > 1]
        no_decay = [p for p in params if p.ndim <= 1]  # biases and normalisation scales
        for subset, wd in ((decay, options.weight_decay), (no_decay, 0.0)):
            if subset:
                param_groups.append({"params": subset, "lr": phase.lrs[name], "peak_lr": phase.lrs[name],
                                     "weight_decay": wd, "group": name})
    if options.optimizer == "sgd":
        return torch.optim.SGD(param_groups, lr=0.0, momentum=options.momentum, nesterov=True)
    return torch.optim.AdamW(param_groups, lr=0.0)


def apply_lr(optimizer: torch.optim.Optimizer, multiplier: float) -> float:
    """Set every group to peak_lr * multiplier; return the largest rate (the head's, for the history)."""
    for g in optimizer.param_groups:
        g["lr"] = g["peak_lr"] * multiplier
    return max(g["lr"] for g in optimizer.param_groups)
