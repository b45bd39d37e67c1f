"""The objects that describe a run, saved fully resolved in RUN/config.yaml; torch-free.

Every option is a dataclass field whose metadata carries its command-line help, choices and check, so the CLI
(tlearn.commands.options) is generated from here and each default and each check exists once. RunOptions holds
what every command that writes a run shares; FitConfig (here) and DistillConfig (tlearn.distill.config) build
on it.
"""
from __future__ import annotations

import platform
from dataclasses import MISSING, asdict, dataclass, field, fields

from . import checks
from ._version import __version__
from .constants import (CACHE_DIR_HELP, AUGMENT_PRESETS, AUTO_BACKBONE, DEFAULT_AUTO_BUDGET_MINUTES, DEFAULT_BACKBONE,
                        DEFAULT_BATCH_SIZE, DEFAULT_GRAD_CLIP, DEFAULT_RANK_METRIC, DEFAULT_STRATEGY,
                        DEFAULT_TRAIN_BATCH_SIZE, DEFAULT_VAL_FRACTION, DEFAULT_WEIGHT_DECAY, OPTIMIZERS, PRECISIONS,
                        RANK_METRICS, STRATEGY_NAMES, FINETUNE_RECIPE_NAMES)
from .errors import TlearnError
from .strategy_defaults import quoted

TRAINING_GROUP = "fine-tuning (finetune, gradual, lp-ft, scratch)"


def option(default=MISSING, help: str | None = None, *, choices: tuple | None = None, check=None,
           flags: tuple[str, ...] | None = None, metavar: str | None = None, group: str | None = None,
           positional: bool = False, cli: bool = True, kw_only: bool = False,
           deprecated: tuple[str, ...] = (), flag_value=None, parse=None, default_factory=MISSING):
    """A config field with what its command-line argument needs (help, choices, flags) and its check.

    The default is written here once: `--help` shows it. `deprecated`: older spellings still accepted (with a
    warning). `flag_value`: a single-choice option given as a flag that sets this value. `parse`: the argument's
    type when the annotation is not int, float, str or bool (e.g. a comma-separated list)."""
    meta = {"help": help, "choices": choices, "check": check, "flags": flags, "metavar": metavar, "group": group,
            "positional": positional, "cli": cli, "deprecated": tuple(deprecated), "flag_value": flag_value,
            "parse": parse}
    if default_factory is not MISSING:
        return field(default_factory=default_factory, metadata=meta, kw_only=kw_only)
    return field(default=default, metadata=meta, kw_only=kw_only)


def option_like(config_class, name: str, **changes):
    """The same option as config_class's field `name` (default, help, check), for another config."""
    f = next(f for f in fields(config_class) if f.name == name)
    return field(default=f.default, metadata={**f.metadata, **changes})


def flags_of(f) -> list[str]:
    """The command-line spellings of a config field, the canonical one first."""
    return list(f.metadata.get("flags") or [f"--{f.name.replace('_', '-')}"])


def validate(config) -> None:
    """Every field's choices and check; a bad value is a TlearnError naming the option."""
    for f in fields(config):
        value, meta = getattr(config, f.name), f.metadata
        if value is None:
            continue
        flag = flags_of(f)[0]
        try:
            if meta.get("choices") is not None:
                checks.one_of(tuple(meta["choices"]), flag)(value)
            if meta.get("check") is not None:
                meta["check"](value)
        except ValueError as exc:
            raise TlearnError(str(exc)) from None


@dataclass
class RunOptions:
    """What every command that trains and writes a run directory shares."""

    data: str = option(help="data folder or CSV manifest", positional=True)
    out: str = option(help="run directory to write")
    seed: int = option(0)
    val_fraction: float = option(DEFAULT_VAL_FRACTION, "held out of train when DATA has no val/ (whole groups when "
                                                       "images have one); 0: nothing held out, the linear probe's "
                                                       "settings then come from cross-validation on train",
                                 check=checks.check_val_fraction)
    group_by: str | None = option(None, "regex that takes each image's group (patient) from its file name, where "
                                        "a manifest has no group column: the first capture group or the whole "
                                        "match (searched in the path relative to DATA when it contains '/'); "
                                        "e.g. '^(person\\d+|(?:NORMAL2-)?IM-\\d+)'. A group never spans two splits",
                                  check=checks.check_regex, metavar="REGEX")
    batch_size: int = option(DEFAULT_BATCH_SIZE, check=checks.at_least(1, "--batch-size"))
    precision: str = option("auto", choices=PRECISIONS)
    device: str = option("auto", "auto, cpu, cuda, cuda:N")
    cache_dir: str | None = option(None, CACHE_DIR_HELP)
    num_workers: int | None = option(None, "image decoding processes")
    progress: bool = option(True, "no progress bars", flags=("--no-progress",))
    dicom_window: str = option("auto", "how DICOM grey values become pixels: auto (the file's VOI LUT or window, "
                                       "else its min..max), none (min..max) or CENTER,WIDTH (e.g. 40,400; "
                                       "--dicom-window=-600,1500 for a negative centre); "
                                       "recorded in the run, so predict, evaluate and exports do the same",
                               check=checks.check_dicom_window, metavar="auto|none|C,W")
    overwrite: bool = option(False, "replace the finished run in OUT, or write into an existing folder that is not "
                                    "a tlearn run (its other files are kept); an interrupted run's folder is reused "
                                    "without this")
    track: str | None = option(None, "log the run to experiment trackers: mlflow, tensorboard (comma-separated); "
                                     "MLflow's local store beside OUT (OUT/../mlflow.db, OUT/../mlruns) unless "
                                     "--tracking-uri or MLFLOW_TRACKING_URI names another", metavar="LIST")
    tracking_uri: str | None = option(None, "--track mlflow: the tracking server or store URI", metavar="URI")
    weight_decay: float = option(DEFAULT_WEIGHT_DECAY, group=TRAINING_GROUP)
    train_batch_size: int = option(DEFAULT_TRAIN_BATCH_SIZE, "images per training step (per process)",
                                   check=checks.at_least(1, "--train-batch-size"), group=TRAINING_GROUP)
    ema: float | None = option(None, "keep a moving average of the weights (e.g. 0.99) and evaluate and save it "
                                     "instead", check=checks.check_decay, metavar="DECAY", group=TRAINING_GROUP)

    def __post_init__(self) -> None:
        validate(self)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict):
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


@dataclass
class FitConfig(RunOptions):
    """A `tlearn fit` run: data -> backbone -> strategy -> run directory."""

    strategy: str = option(DEFAULT_STRATEGY, "how the backbone is transferred: " + ", ".join(STRATEGY_NAMES)
                           + " (docs/guide/strategies.md)")
    finetune_recipe: str = option("auto", "--strategy finetune: auto (chosen from the data's facts: grey or far "
                                          "from ImageNet -> train-bn, small images -> small-images, else "
                                          "finetune), or that recipe by name; options given explicitly still win",
                                  choices=FINETUNE_RECIPE_NAMES)
    backbone: str = option(DEFAULT_BACKBONE,
                           "registry name (see `tlearn backbones`), timm:<name>, a tlearn run directory, or auto "
                           "(rank the candidate sources on train, fit from the best; see --rank-sources)")
    weights: str | None = option(None, "pretrained weights: omit for the registry's, 'none' for random init, or a "
                                       "file path")
    weights_sha256: str | None = option(None, "refuse weights whose sha256 differs")
    rank_sources: str | None = option(None, "--backbone auto: comma-separated candidates (registry names, "
                                            "timm:<name>, run directories; default: every registry backbone with "
                                            "weights here)", metavar="LIST", flags=("--rank-sources",))
    rank_metric: str = option(DEFAULT_RANK_METRIC, "--backbone auto: the transferability score that picks the "
                                                   "source", choices=RANK_METRICS, flags=("--rank-metric",))
    class_weights: str | None = option(None, "weight the loss of each class by 1/frequency (multi-label: each "
                                             "label's positives by negatives/positives)", choices=("auto",),
                                       flags=("--balanced-loss",), flag_value="auto", deprecated=("--class-weights",))
    empty_label: str | None = option(None, "multi-label manifests: this label (e.g. 'No Finding') excludes all "
                                           "others and becomes the empty set, not a class", metavar="LABEL")
    unlabeled: str | None = option(None, "linear-probe: images without labels (a folder, or a manifest whose rows "
                                         "with an empty label are them) the probe may learn from by self-training or "
                                         "label spreading on their cached features; used only when val (else "
                                         "cross-validation on train) says it pays, and recorded either way",
                                   metavar="FOLDER|CSV")
    strict: bool = option(False, "refuse to train when a group (patient) appears in two of the given splits "
                                 "(default: warn, and list them in metrics.json)")
    # gradient-based strategies (finetune, gradual, lp-ft, scratch); None: the strategy's own default
    epochs: int | None = option(None, f"epochs of the main phase (default: {quoted('epochs')})",
                                check=checks.at_least(1, "--epochs"), group=TRAINING_GROUP)
    head_epochs: int | None = option(None, "finetune: train the head alone for N epochs first, instead of "
                                           "starting from the linear probe (default: "
                                           f"{quoted('head_epochs')}, the probe is the head)",
                                     group=TRAINING_GROUP)
    lr: float | None = option(None, f"peak learning rate of the head (default: {quoted('lr')})",
                              group=TRAINING_GROUP)
    lr_ratio: float | None = option(None, "head lr / stem lr: rates fall geometrically from head to stem "
                                          f"(default: {quoted('lr_ratio')})", group=TRAINING_GROUP)
    optimizer: str | None = option(None, f"(default: {quoted('optimizer')})", choices=OPTIMIZERS,
                                   group=TRAINING_GROUP)
    augment: str | None = option(None, "augmentation preset: flip only mirrors the eval view; crop does not flip "
                                       "(traffic signs, text); strong adds mixup/cutmix (default: "
                                       f"{quoted('augment')})",
                                 choices=AUGMENT_PRESETS, group=TRAINING_GROUP)
    image_size: int | None = option(None, "input size to train and predict at (e.g. 32 for 32 px images) "
                                          "(default: the backbone's)", check=checks.at_least(8, "--image-size", " px"),
                                    group=TRAINING_GROUP)
    train_size: int | None = option(None, "size of the random crops fine-tuning trains on, when it should differ "
                                          "from the size it predicts at (efficientnet_lite0: trains at 224, "
                                          "predicts at 256)", group=TRAINING_GROUP)
    unfreeze_every: int = option(1, "gradual: epochs between unfreezing groups", group=TRAINING_GROUP)
    freeze_bn: bool | None = option(None, f"keep BatchNorm statistics fixed (default: {quoted('freeze_bn')})",
                                    group=TRAINING_GROUP)
    sampler: str | None = option(None, "draw classes equally often", choices=("balanced",),
                                 flags=("--balanced-sampler",), flag_value="balanced", deprecated=("--sampler",),
                                 group=TRAINING_GROUP)
    label_smoothing: float | None = option(None, f"(default: {quoted('label_smoothing')}: finetune's head starts "
                                                 "from the probe, which already fits train)",
                                           group=TRAINING_GROUP)
    grad_clip: float | None = option(DEFAULT_GRAD_CLIP, "max gradient norm (0: off)", group=TRAINING_GROUP)
    l2_sp: float | None = option(None, "L2-SP: pull the backbone towards its pretrained weights with strength "
                                       "ALPHA instead of only decaying weights to zero; 0: off (default: "
                                       f"{quoted('l2_sp')})", check=checks.check_l2_sp, metavar="ALPHA",
                                 group=TRAINING_GROUP)
    accumulation: int = option(1, "micro-batches per optimizer step", check=checks.at_least(1, "--accumulation"),
                               group=TRAINING_GROUP)
    memory_budget: float | None = option(None, "gigabytes fine-tuning may use (the process and its data workers): "
                                               "each batch is then taken in micro-batches that fit, with the same "
                                               "gradient and schedule (BatchNorm in train mode sees the smaller "
                                               "micro-batches)", check=checks.check_memory_budget, metavar="GB",
                                         group=TRAINING_GROUP)
    patience: int | None = option(None, "stop after N epochs without better val accuracy", group=TRAINING_GROUP)
    max_seconds: float | None = option(None, "wall-clock budget for training", group=TRAINING_GROUP)
    resume: bool = option(False, "continue from RUN/checkpoints after an interruption", group=TRAINING_GROUP)
    budget_minutes: float | None = option(None, "--strategy auto: wall-clock budget for the whole fit, final "
                                                "evaluation included (default: "
                                                f"{DEFAULT_AUTO_BUDGET_MINUTES:g}); rerunning the same command "
                                                "continues an interrupted search")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.backbone == AUTO_BACKBONE and self.weights is not None:
            raise TlearnError("--weights cannot be combined with --backbone auto (each candidate uses its own).")
        if self.backbone != AUTO_BACKBONE and (self.rank_sources is not None
                                               or self.rank_metric != DEFAULT_RANK_METRIC):
            raise TlearnError("--rank-sources and --rank-metric choose among sources for --backbone auto; add "
                              "--backbone auto, or drop them.")
        if self.finetune_recipe != "auto" and self.strategy != "finetune":
            raise TlearnError("--finetune-recipe chooses the recipe of --strategy finetune; add --strategy finetune, "
                              "or drop it.")
        if self.unlabeled is not None and self.strategy != "linear-probe":
            raise TlearnError("--unlabeled is used by --strategy linear-probe (self-training or label spreading on "
                              "cached features); `tlearn distill --unlabeled` teaches a student with them.")
        if self.budget_minutes is not None and self.strategy != "auto":
            raise TlearnError("--budget-minutes is for --strategy auto; other strategies take --max-seconds.")


def library_versions() -> dict:
    import numpy
    import sklearn
    import timm
    import torch
    import torchvision

    return {
        "tlearn": __version__, "python": platform.python_version(), "torch": str(torch.__version__),
        "torchvision": str(torchvision.__version__), "timm": timm.__version__, "scikit-learn": sklearn.__version__,
        "numpy": numpy.__version__,
    }
