"""BatchNorm modes: frozen groups (and all groups with freeze_bn) keep BN in inference mode."""
from __future__ import annotations

from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm


def bn_by_group(model: nn.Module, groups: list[tuple[str, list[nn.Parameter]]]) -> dict[str, list[nn.Module]]:
    """BatchNorm modules of each layer group (by where their weight lives); unaffine BN goes with the head."""
    owner = {id(p): name for name, params in groups for p in params}
    out: dict[str, list[nn.Module]] = {name: [] for name, _ in groups}
    for m in model.modules():
        if isinstance(m, _BatchNorm):
            name = owner.get(id(m.weight)) if m.weight is not None else None
            out.setdefault(name or groups[-1][0], []).append(m)
    return out


def set_bn_modes(model: nn.Module, bn_groups: dict[str, list[nn.Module]], trainable: set[str],
                 freeze_bn: bool) -> dict[str, str]:
    """Put the model in train mode, then BN of frozen groups (or all, with freeze_bn) in eval mode.

    Returns {group: "train" | "eval"} for the groups that have BatchNorm, for the log.
    """
    model.train()
    modes = {}
    for name, modules in bn_groups.items():
        frozen = freeze_bn or name not in trainable
        for m in modules:
            m.train(not frozen)
        if modules:
            modes[name] = "eval" if frozen else "train"
    return modes


def describe_modes(modes: dict[str, str]) -> str:
    if not modes:
        return "no BatchNorm"
    if len(set(modes.values())) == 1:
        return f"BatchNorm in {next(iter(modes.values()))} mode in all groups"
    return "BatchNorm " + ", ".join(f"{g}={m}" for g, m in modes.items())
