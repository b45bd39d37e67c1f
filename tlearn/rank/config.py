"""The options of `tlearn rank` (torch-free, so `--help` stays fast); the CLI is generated from them."""
from __future__ import annotations

from dataclasses import asdict, dataclass

from ..config import FitConfig, RunOptions, option, option_like, validate
from ..constants import RANK_METRICS

ALL_METRICS = "all"


@dataclass
class RankConfig:
    """Which sources to score on which data, with which metric."""

    data: str = option(help="data folder or CSV manifest (its train split is scored)", positional=True)
    sources: str | None = option_like(FitConfig, "rank_sources", help="comma-separated candidates: registry "
                                      "names, timm:<name>, tlearn run directories, or offline (default: every "
                                      "registry backbone with weights here)", deprecated=("--sources",))
    metric: str = option_like(FitConfig, "rank_metric", help="transferability score (higher is better); all: "
                              "every one", choices=(*RANK_METRICS, ALL_METRICS), deprecated=("--metric",))
    verify: str | None = option(None, "also fit each source's linear probe on train and report its val accuracy, "
                                      "the ground truth a ranking predicts (slower)", choices=("probe",),
                                flags=("--verify-probe",), flag_value="probe", deprecated=("--verify",))
    out: str | None = option(None, "folder to write rank.json and rank.html into", metavar="DIR")
    image_size: int | None = option_like(FitConfig, "image_size", help="score every source at this input size (as "
                                         "`fit --image-size` would train it) (default: each source's own)", group=None)
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
