"""The Callback protocol, the dispatcher that calls several callbacks, and the flattening every tracker shares."""
from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Protocol, runtime_checkable

log = logging.getLogger("tlearn")

EPOCH_METRICS = ("lr", "train_loss", "val_loss", "val_accuracy", "seconds")  # history.csv's numeric columns


@runtime_checkable
class Callback(Protocol):
    """What a run tells a tracker: its resolved config, each history.csv row, and the finished run directory."""

    def on_run_start(self, config: dict) -> None:
        """Before training: the resolved config (config.yaml's content)."""

    def on_epoch_end(self, row: dict) -> None:
        """After each epoch: its history.csv row (epoch, lr, train_loss, val_loss, val_accuracy, seconds)."""

    def on_run_end(self, run_dir: Path, metrics: dict) -> None:
        """After the run directory is complete on disk: its path and metrics.json's content."""


class Tracking:
    """Calls every callback in order. A callback that fails at the start stops the run (a wrong tracking URI is
    found before training); one that fails later is logged and dropped, so tracking never loses a trained run.
    A row whose epoch was already sent is not sent again, so a pipeline may replay a job's whole history after
    training (jobs without a training loop) without doubling what the loop sent live."""

    def __init__(self, callbacks: Iterable[Callback] = ()):
        self.callbacks = list(callbacks)
        self._epochs: set = set()

    def on_run_start(self, config: dict) -> None:
        """Every callback's on_run_start; errors propagate (nothing has been trained yet), after the callbacks
        already started are told the run failed."""
        for i, cb in enumerate(self.callbacks):
            try:
                cb.on_run_start(config)
            except BaseException as exc:
                Tracking(self.callbacks[:i]).on_run_failed(exc)
                raise

    def on_epoch_end(self, row: dict) -> None:
        """Every callback's on_epoch_end (once per epoch); a failing one is logged and dropped."""
        epoch = row.get("epoch")
        if epoch is not None and epoch in self._epochs:
            return
        self._epochs.add(epoch)
        self._each("on_epoch_end", row)

    def on_run_end(self, run_dir: Path, metrics: dict) -> None:
        """Every callback's on_run_end; a failing one is logged and dropped."""
        self._each("on_run_end", Path(run_dir), metrics)

    def on_run_failed(self, error: BaseException) -> None:
        """The run stopped on `error`: callbacks that define on_run_failed close their runs as failed."""
        for cb in list(self.callbacks):
            if hasattr(cb, "on_run_failed"):
                self._each_one(cb, "on_run_failed", error)

    def _each(self, event: str, *args) -> None:
        for cb in list(self.callbacks):
            self._each_one(cb, event, *args)

    def _each_one(self, cb: Callback, event: str, *args) -> None:
        try:
            getattr(cb, event)(*args)
        except Exception as exc:  # noqa: BLE001 - a tracker's failure must not lose the training run
            log.warning("tracking: %s.%s failed (%s: %s); the run goes on without it", type(cb).__name__,
                        event, type(exc).__name__, exc)
            self.callbacks.remove(cb)


def _number(value) -> float | None:
    """value as a finite float, or None (empty CSV cells, strings, NaN, booleans are not metrics)."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def flatten_config(config: Mapping, prefix: str = "") -> dict[str, str]:
    """{"backbone": {"name": "r18"}} -> {"backbone.name": "r18"}; lists and scalars become their text."""
    flat: dict[str, str] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten_config(value, f"{name}."))
        else:
            flat[name] = "" if value is None else str(value)
    return flat


def epoch_metrics(row: Mapping) -> tuple[int | None, dict[str, float]]:
    """(epoch, {metric: value}) of a history.csv row; empty or non-numeric cells are left out."""
    epoch = _number(row.get("epoch"))
    values = {k: _number(row.get(k)) for k in EPOCH_METRICS}
    return (None if epoch is None else int(epoch)), {k: v for k, v in values.items() if v is not None}


def run_metrics(metrics: Mapping) -> dict[str, float]:
    """metrics.json flattened to numbers: `{split}_{name}` for each split's scalars, `{split}_{name}_ci_low` and
    `_ci_high` for its 95% intervals, and the top-level numbers (train_seconds, ...) by their own name."""
    flat: dict[str, float] = {}
    for key, value in metrics.items():
        if isinstance(value, Mapping):
            for name, v in value.items():
                if name == "ci95" and isinstance(v, Mapping):
                    for metric, interval in v.items():
                        if isinstance(interval, (list, tuple)) and len(interval) == 2:
                            for side, bound in zip(("low", "high"), interval):
                                if _number(bound) is not None:
                                    flat[f"{key}_{metric}_ci_{side}"] = _number(bound)
                elif _number(v) is not None:
                    flat[f"{key}_{name}"] = _number(v)
        elif _number(value) is not None:
            flat[key] = _number(value)
    return flat
