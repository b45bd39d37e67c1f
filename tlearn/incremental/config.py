"""ExtendConfig: what `tlearn extend` takes; torch-free, so `--help` stays fast. Saved in RUN2/config.yaml."""
from __future__ import annotations

from dataclasses import asdict, dataclass

from .. import checks
from ..config import option, validate

METHODS = ("analytic", "lwf", "naive")
HEADS = ("lda", "ridge")  # tlearn.incremental.analytic solves these
DEFAULT_HEAD = "lda"
DEFAULT_LWF_WEIGHT = 1.0
DEFAULT_LWF_TEMPERATURE = 2.0
DEFAULT_LWF_L2_SP = 0.1
FINETUNED = "fine-tuned parents (lwf, naive)"


@dataclass
class ExtendConfig:
    """A `tlearn extend` step: the parent run, the new data, and how the new classes or images are learned."""

    run: str = option(help="the trained run to extend", positional=True)
    data: str = option(help="new data: new classes and/or more images of the run's classes (any fit layout)",
                       positional=True)
    out: str = option(help="run directory to write (never the parent's)")
    method: str | None = option(None, "analytic (default for linear-probe runs: no old images needed), lwf (default "
                                      "for fine-tuned runs) or naive (fine-tune on the new data alone)",
                                choices=METHODS)
    head: str = option(DEFAULT_HEAD, "analytic: lda (shared-covariance discriminant, calibrated probabilities) or "
                                     "ridge (ridge regression, lambda by generalised cross-validation)",
                       choices=HEADS)
    replay: int = option(0, "lwf/naive: also train on K exemplar images per old class, kept by the run as paths + "
                            "sha256", metavar="K", check=checks.at_least(0, "--replay"), group=FINETUNED)
    epochs: int | None = option(None, "epochs (default: the parent's)",
                                check=checks.at_least(1, "--epochs"),
                                group=FINETUNED)
    lr: float | None = option(None, "peak learning rate of the head (default: the parent's)",
                              group=FINETUNED)
    sampler: str | None = option(None, "balanced: draw every class (old ones through their exemplars) equally often "
                                       "(default: balanced with --replay, else the parent's)", choices=("balanced",),
                                 group=FINETUNED)
    lwf_weight: float = option(DEFAULT_LWF_WEIGHT, "lwf: weight of the old model's soft targets on the new images",
                               check=checks.check_feature_weight, group=FINETUNED)
    temperature: float = option(DEFAULT_LWF_TEMPERATURE, "lwf: temperature of the soft targets",
                                check=checks.check_temperature, group=FINETUNED)
    l2_sp: float | None = option(None, "pull the backbone towards the parent's weights with strength ALPHA (default "
                                       f"for lwf: the parent's --l2-sp, {DEFAULT_LWF_L2_SP} if it had the default; "
                                       "off for naive)", check=checks.check_l2_sp,
                                 metavar="ALPHA", group=FINETUNED)
    seed: int | None = option(None, "default: the parent's")
    val_fraction: float | None = option(None, "held out of NEWDATA's train when it has no val/ (default: the parent's)")
    device: str | None = option(None, "default: the parent's")
    cache_dir: str | None = option(None, "feature cache folder (default: the parent's, else TLEARN_CACHE)")
    progress: bool = option(True, "no progress bars", flags=("--no-progress",))
    overwrite: bool = option(False, "write into an existing folder that is not a tlearn run (its other files are kept)")

    def __post_init__(self) -> None:
        validate(self)

    def to_dict(self) -> dict:
        return asdict(self)
