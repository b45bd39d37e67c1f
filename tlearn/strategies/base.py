"""What a strategy receives and returns. The fit orchestration knows no strategy by name."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from torch import nn

from ..backbones.model import BackboneInfo, TransferModel
from ..data.layout import DataSplits, SkippedFile

log = logging.getLogger("tlearn")


@dataclass
class FitContext:
    splits: DataSplits
    backbone: nn.Module  # pretrained feature extractor, weights already loaded
    backbone_info: BackboneInfo
    out: Path  # the run directory (checkpoints may be written here)
    config: "object"  # tlearn.config.FitConfig
    precision: str  # resolved: bf16 or fp32
    device: str
    cache_dir: Path
    on_epoch_end: Callable[[dict], None] | None = None  # told each history row as training goes (the trackers)


@dataclass
class FitResult:
    model: TransferModel
    history: list[dict] = field(default_factory=list)  # rows of history.csv
    skipped: list[SkippedFile] = field(default_factory=list)  # found while reading train images
    details: dict = field(default_factory=dict)  # strategy facts for config.yaml (e.g. chosen C)
    train_metrics: dict | None = None
    backbone_info: BackboneInfo | None = None  # set when the strategy chose another input size (auto)
    out_of_fold: tuple | None = None  # multi-label probe without val: (train samples, out-of-fold probabilities)
    files: dict[str, Callable[[Path], None]] = field(default_factory=dict)  # more run files: name -> write(path)


class Strategy(Protocol):
    name: str

    def fit(self, ctx: FitContext) -> FitResult: ...
