"""DoctorConfig: the options of `tlearn doctor`, declared once (torch-free, so `--help` stays fast); the CLI is
generated from them and diagnose() takes its defaults from here."""
from __future__ import annotations

from dataclasses import asdict, dataclass

from ..config import FitConfig, RunOptions, option, option_like, validate
from ..constants import LABEL_RANKINGS


@dataclass
class DoctorConfig:
    """What `tlearn doctor` examines, with which backbone, and what it writes."""

    data: str = option(help="data folder (train/ [val/ test/] or a class tree) or CSV manifest", positional=True)
    out: str | None = option(None, "write DIR/doctor.html and DIR/doctor.json", metavar="DIR")
    backbone: str = option_like(FitConfig, "backbone", help="backbone whose features are compared (use the one "
                                                           "you will fit with, so fit reuses the features)")
    weights: str | None = option_like(FitConfig, "weights")
    image_size: int | None = option_like(FitConfig, "image_size", help="input size, as in fit (default: the "
                                                                       "backbone's)", group=None)
    fail_on_leakage: bool = option(False, "exit with status 1 when a duplicate spans two splits (the report is "
                                          "still printed and written)", deprecated=("--strict",))
    rank_by: str = option(LABEL_RANKINGS[0], "how label issues are ranked: self_confidence (the given label's "
                                             "probability) or normalized_margin", choices=LABEL_RANKINGS)
    seed: int = option_like(RunOptions, "seed", help="seed of the val hold-out and the probe's folds, as in fit")
    val_fraction: float = option_like(RunOptions, "val_fraction")
    device: str = option_like(RunOptions, "device")
    precision: str = option_like(RunOptions, "precision")
    batch_size: int = option_like(RunOptions, "batch_size")
    cache_dir: str | None = option_like(RunOptions, "cache_dir")
    num_workers: int | None = option_like(RunOptions, "num_workers")
    progress: bool = option_like(RunOptions, "progress")

    def __post_init__(self) -> None:
        validate(self)

    def to_dict(self) -> dict:
        return asdict(self)
