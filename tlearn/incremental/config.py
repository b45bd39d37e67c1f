"""ExtendConfig (`tlearn extend`, saved in RUN2/config.yaml) and IncrementalConfig (`tlearn incremental`): their
options declared once, torch-free so `--help` stays fast; the options they share with fit are fit's."""
from __future__ import annotations

from dataclasses import asdict, dataclass

from .. import checks
from ..config import FitConfig, RunOptions, option, option_like, validate
from ..constants import FINETUNE_RECIPE_NAMES

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
    sampler: str | None = option(None, "draw every class (old ones through their exemplars) equally often "
                                       "(default: on with --replay, else the parent's)", choices=("balanced",),
                                 flags=("--balanced-sampler",), flag_value="balanced", deprecated=("--sampler",),
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
    strict: bool = option_like(FitConfig, "strict", help="refuse NEWDATA whose train images the run already holds "
                                                       "(they would count twice), and a group (patient) in two "
                                                       "splits (default: warn)")
    progress: bool = option_like(RunOptions, "progress")
    overwrite: bool = option_like(RunOptions, "overwrite")
    track: str | None = option_like(RunOptions, "track")
    tracking_uri: str | None = option_like(RunOptions, "tracking_uri")

    def __post_init__(self) -> None:
        validate(self)

    def to_dict(self) -> dict:
        return asdict(self)


PROTOCOL_METHODS = ("analytic", "lwf", "replay", "naive", "joint")
FINETUNED_METHODS = ("lwf", "replay", "naive")
# auto: chosen from the data's facts, as fit --strategy finetune does; the others are
# tlearn.strategies.recipes.FINETUNE_RECIPES by name, kept torch-free here
RECIPES = FINETUNE_RECIPE_NAMES


def _check_methods(value: str) -> str:
    names = [m.strip() for m in value.split(",") if m.strip()]
    unknown = [m for m in names if m not in PROTOCOL_METHODS]
    if unknown or not names:
        raise ValueError(f"--methods: unknown {unknown}; choose among {', '.join(PROTOCOL_METHODS)}")
    return value


@dataclass
class IncrementalConfig:
    """The class-incremental protocol: which data, cut into how many tasks, learned by which methods."""

    data: str = option(help="data folder or CSV manifest (any fit layout)", positional=True)
    out: str = option(help="study folder to write")
    tasks: int = option(2, "number of tasks the classes are cut into", check=checks.at_least(2, "--tasks"))
    # plural, as study's --strategies; --method (extend's name) is the same option
    methods: str = option(",".join(PROTOCOL_METHODS), "comma-separated, among " + ", ".join(PROTOCOL_METHODS),
                          check=_check_methods, flags=("--methods", "--method"), metavar="LIST")
    seeds: int = option(1, "training seeds 0..N-1 (the class order stays the same)",
                        check=checks.at_least(1, "--seeds"))
    class_order_seed: int = option(0, "seed of the class order (the order is recorded)")
    backbone: str = option_like(FitConfig, "backbone", help="registry name (see `tlearn backbones`), timm:<name> or "
                                                           "a tlearn run directory")
    weights: str | None = option_like(FitConfig, "weights")
    image_size: int | None = option_like(FitConfig, "image_size", group=None)
    head: str = option_like(ExtendConfig, "head")
    recipe: str = option("auto", "fine-tuning recipe of the first task and of joint fine-tuning, inherited by the "
                                 "extensions: auto (chosen from the data's facts, as fit --strategy finetune does), "
                                 "finetune (natural photos: frozen BatchNorm, SGD, L2-SP), train-bn (BatchNorm "
                                 "trained, AdamW) or small-images (train-bn with crops, for images far smaller than "
                                 "the backbone's input; give --image-size)", choices=RECIPES,
                         flags=("--finetune-recipe",), deprecated=("--recipe",))
    epochs: int | None = option(None, "fine-tuning epochs per task (default: the recipe's)",
                                check=checks.at_least(1, "--epochs"))
    replay: int = option(20, "exemplars per old class for the replay method", check=checks.at_least(1, "--replay"))
    train_batch_size: int | None = option(None, "images per fine-tuning step (default: the recipe's, else fit's)",
                                          check=checks.at_least(1, "--train-batch-size"))
    val_fraction: float = option_like(RunOptions, "val_fraction")
    device: str = option_like(RunOptions, "device")
    cache_dir: str | None = option_like(RunOptions, "cache_dir")
    num_workers: int | None = option_like(RunOptions, "num_workers")
    progress: bool = option_like(RunOptions, "progress")

    def __post_init__(self) -> None:
        validate(self)

    @property
    def method_list(self) -> list[str]:
        return [m.strip() for m in self.methods.split(",") if m.strip()]

    def to_dict(self) -> dict:
        return asdict(self)
