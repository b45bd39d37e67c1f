"""Strategies: what trains, with which learning rates, in which phases. Looked up by name.

`--strategy auto` is not one of them: it searches over them (tlearn.auto), and tlearn.fitting dispatches to it.
"""
from __future__ import annotations

from collections.abc import Callable

from ..constants import AUTO_STRATEGY, STRATEGY_NAMES
from ..errors import TlearnError
from .base import FitContext, FitResult, Strategy
from .finetune import FineTune, Gradual, LinearProbeThenFineTune, Scratch
from .linear_probe import LinearProbe
from .linear_probe_strategy import LinearProbeStrategy


_FACTORIES: dict[str, Callable[[object], Strategy]] = {
    "linear-probe": lambda cfg: LinearProbeStrategy(
        class_weight="balanced" if getattr(cfg, "class_weights", None) == "auto" else None
    ),
    "finetune": FineTune,
    "gradual": Gradual,
    "lp-ft": LinearProbeThenFineTune,
    "scratch": Scratch,
}
# name -> factory(config) -> Strategy, for the names tlearn.constants lists (the CLI's help shows those)
STRATEGIES: dict[str, Callable[[object], Strategy]] = {name: _FACTORIES[name] for name in STRATEGY_NAMES
                                                       if name != AUTO_STRATEGY}


def get_strategy(name: str, config) -> Strategy:
    if name not in STRATEGIES:
        raise TlearnError(f"unknown strategy {name!r}; choose one of {', '.join(STRATEGY_NAMES)}.")
    return STRATEGIES[name](config)


__all__ = ["FitContext", "FitResult", "Strategy", "LinearProbe", "LinearProbeStrategy", "STRATEGIES", "get_strategy"]
