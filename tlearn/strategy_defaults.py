"""The hyper-parameter defaults of the gradient-based strategies, declared once (torch-free).

Each strategy in tlearn.strategies.finetune reads its row here; FitConfig's `--help` quotes the rows, the
training loop's own defaults (TrainOptions) are LOOP's, and a run's config.yaml records the values resolved
from them (strategy.hyperparameters). An option the user gives wins over its row.
"""
from __future__ import annotations

from dataclasses import dataclass, fields


@dataclass(frozen=True)
class StrategyDefaults:
    """What a strategy trains with where the run leaves an option unset (None)."""

    lr: float = 1e-3  # peak learning rate of the head
    epochs: int = 6  # epochs of the main phase
    optimizer: str = "adamw"
    augment: str = "light"  # a tlearn.data.augment preset
    label_smoothing: float = 0.1
    freeze_bn: bool = False  # BatchNorm statistics kept fixed
    l2_sp: float | None = None  # L2-SP towards the pretrained weights; None: off
    lr_ratio: float = 10.0  # head lr / stem lr of discriminative rates
    head_epochs: int = 0  # head-only epochs before the main phase (finetune; 0: the linear probe is the head)


LOOP = StrategyDefaults()  # the training loop's defaults, for a caller that gives it no strategy's
STRATEGY_DEFAULTS: dict[str, StrategyDefaults] = {
    # tuned on flowers over several seeds: docs/results.md#how-the-defaults-were-chosen. BatchNorm frozen: the
    # probe's head was fitted on inference-mode BN features; lr large enough to adapt the features, L2-SP keeps
    # them from being forgotten; no label smoothing: the head starts from the probe, which already fits train
    "finetune": StrategyDefaults(lr=2e-2, epochs=8, optimizer="sgd", augment="medium", label_smoothing=0.0,
                                 freeze_bn=True, l2_sp=0.1),
    "gradual": StrategyDefaults(lr=1e-3, epochs=8),
    "lp-ft": StrategyDefaults(lr=1e-4, epochs=5, freeze_bn=True),
    "scratch": StrategyDefaults(lr=3e-3, epochs=15),
}
DEFAULT_FIELDS = tuple(f.name for f in fields(StrategyDefaults))


def _show(value) -> str:
    return "off" if value is None else ("on" if value else "off") if isinstance(value, bool) else f"{value:g}" \
        if isinstance(value, float) else str(value)


def quoted(name: str) -> str:
    """The strategies' defaults of one option for `--help`: 'finetune 8, gradual 8, lp-ft 5, scratch 15'."""
    values = {s: getattr(d, name) for s, d in STRATEGY_DEFAULTS.items()}
    if len(set(values.values())) == 1:
        return _show(next(iter(values.values())))
    return ", ".join(f"{s} {_show(v)}" for s, v in values.items())
