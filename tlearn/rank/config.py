"""The options of `tlearn rank` (torch-free, so `--help` stays fast); the CLI is generated from them."""
from __future__ import annotations

from dataclasses import asdict, dataclass

from ..config import RunOptions, option, option_like, validate
from ..constants import DEFAULT_RANK_METRIC, RANK_METRICS

ALL_METRICS = "all"


@dataclass
class RankConfig:
    """Which sources to score on which data, with which metric."""

    data: str = option(help="data folder or CSV manifest (its train split is scored)", positional=True)
    sources: str | None = option(None, "comma-separated candidates: registry names, timm:<name>, tlearn run "
                                       "directories, or offline (the default: every registry backbone with weights "
                                       "here)", metavar="LIST")
    metric: str = option(DEFAULT_RANK_METRIC, "transferability score (higher is better)",
                         choices=(*RANK_METRICS, ALL_METRICS))
    verify: str | None = option(None, "probe: also fit each source's linear probe on train and report its val "
                                      "accuracy, the ground truth a ranking predicts (slower)", choices=("probe",))
    out: str | None = option(None, "folder to write rank.json and rank.html into")
    seed: int = option_like(RunOptions, "seed")
    val_fraction: float = option_like(RunOptions, "val_fraction")
    batch_size: int = option_like(RunOptions, "batch_size")
    precision: str = option_like(RunOptions, "precision")
    device: str = option_like(RunOptions, "device")
    cache_dir: str | None = option_like(RunOptions, "cache_dir")
    num_workers: int | None = option_like(RunOptions, "num_workers")
    progress: bool = option_like(RunOptions, "progress")

    def __post_init__(self) -> None:
        validate(self)

    def to_dict(self) -> dict:
        return asdict(self)
