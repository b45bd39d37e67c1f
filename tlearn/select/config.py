"""SelectConfig: the options of `tlearn select`, declared once (torch-free, so `--help` stays fast); the CLI is
generated from them and select_images() takes its defaults from here."""
from __future__ import annotations

from dataclasses import asdict, dataclass

from .. import checks
from ..config import FitConfig, RunOptions, option, option_like, validate

# Cold start (no labels yet): typicality / coverage of the feature space. With labels: the probe's uncertainty
# with diversity. random: the baseline.
COLD_METHODS = ("typiclust", "probcover")
LABELED_METHODS = ("margin", "badge")
METHODS = ("auto", *COLD_METHODS, *LABELED_METHODS, "random")
AUTO_COLD, AUTO_LABELED = "typiclust", "margin"
# `auto`: typical images while labels are few (fewer than this many labelled images per class on average), the
# probe's uncertainty after: the low-budget / high-budget split of Hacohen et al. 2022 (docs/design-notes.md#auto)
TYPICAL_BELOW_PER_CLASS = 20


def method_for(method: str, labelled_per_class: float = 0.0) -> str:
    """The method `auto` stands for: typiclust from nothing and while labels are few, then margin."""
    if method != "auto":
        return method
    return AUTO_LABELED if labelled_per_class >= TYPICAL_BELOW_PER_CLASS else AUTO_COLD


@dataclass
class SelectConfig:
    """Which images of POOL to label next, how many, and where the list goes."""

    pool: str = option(help="folder of unlabeled images (searched recursively) or a CSV manifest with a path column",
                       positional=True)
    budget: int = option(help="how many images to pick", check=checks.at_least(1, "--budget"), metavar="N")
    out: str = option(help="folder for to_label.csv, to_label.html and selection.json", metavar="DIR")
    labeled: str | None = option(None, "images already labelled (any layout fit accepts): the pick is then by the "
                                       "uncertainty of the probe fitted on them, with diversity; they and their "
                                       "near copies are never picked", metavar="DATA")
    method: str = option("auto", f"auto: typiclust, then margin from {TYPICAL_BELOW_PER_CLASS} labelled images per "
                                 "class on. typiclust: the most typical "
                                 "image of each of N clusters; probcover: greedy coverage of the feature space; "
                                 "margin: the probe's least sure images, spread by k-center; badge: k-means++ on "
                                 "features weighted by uncertainty; random", choices=METHODS)
    backbone: str = option_like(FitConfig, "backbone", help="backbone whose features are compared (use the one you "
                                                           "will fit with, so fit reuses the features)")
    weights: str | None = option_like(FitConfig, "weights")
    image_size: int | None = option_like(FitConfig, "image_size", help="input size, as in fit (default: the "
                                                                       "backbone's)", group=None)
    seed: int = option_like(RunOptions, "seed", help="seed of the clustering and of random draws")
    overwrite: bool = option(False, "replace the to_label.csv (and its page) already in DIR; without it an "
                                    "existing list, perhaps half labelled, is never replaced")
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
