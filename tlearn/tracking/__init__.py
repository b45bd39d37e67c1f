"""Experiment tracking: callbacks a run notifies at its start, after each epoch and at its end.

`callbacks_for(["mlflow", "tensorboard"], run_out)` builds the trackers `--track mlflow,tensorboard` asks for;
`Tracking` calls them all and keeps a failing tracker from losing a training run.
"""
from __future__ import annotations

from .base import Callback, Tracking, epoch_metrics, flatten_config, run_metrics
from .select import TRACKERS, callbacks_for, parse_track

__all__ = ["Callback", "Tracking", "TRACKERS", "callbacks_for", "parse_track", "epoch_metrics", "flatten_config",
           "run_metrics"]
