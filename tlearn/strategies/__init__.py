"""Strategies: what trains, with which learning rates, in which phases. Looked up by name."""
from __future__ import annotations

from collections.abc import Callable

from ..constants import STRATEGY_NAMES
from ..errors import TlearnError
from .base import FitContext, FitResult, Strategy
from .finetune import FineTune, Gradual, LinearProbeThenFineTune, Scratch
from .linear_probe import LinearProbe
from .linear_probe_strategy import LinearProbeStrategy


def _auto(cfg) -> Strategy:
    from ..auto import AutoSearch  # imported on use: tlearn.auto builds on the strategies here

    return AutoSearch(cfg)


_FACTORIES: dict[str, Callable[[object], Strategy]] = {
    "linear-probe": lambda cfg: LinearProbeStrategy(
        class_weight="balanced" if getattr(cfg, "class_weights", None) == "auto" else None
    ),
    "finetune": FineTune,
    "gradual": Gradual,
    "lp-ft": LinearProbeThenFineTune,
    "scratch": Scratch,
    "auto": _auto,
}
# name -> factory(config) -> Strategy, for the names tlearn.constants lists (the CLI's help shows those)
STRATEGIES: dict[str, Callable[[object], Strategy]] = {name: _FACTORIES[name] for name in STRATEGY_NAMES}


def get_strategy(name: str, config) -> Strategy:
    if name not in STRATEGIES:
        raise TlearnError(f"unknown strategy {name!r}; choose one of {', '.join(STRATEGIES)}.")
    return STRATEGIES[name](config)


__all__ = ["FitContext", "FitResult", "Strategy", "LinearProbe", "LinearProbeStrategy", "STRATEGIES", "get_strategy"]
