"""DistillConfig: everything that decides a distillation run; saved resolved in RUN/config.yaml (torch-free).

It builds on RunOptions (data, out, seed, batch sizes, device, ...); the fields redefined here keep their place
but take distillation's own defaults and help. A recipe (RECIPES) gives the defaults of the settings left None;
an option given explicitly wins over its recipe.
"""
from __future__ import annotations

from dataclasses import dataclass

from .. import checks
from ..config import RunOptions, option
from ..constants import (AUGMENT_PRESETS, DEFAULT_ALPHA, DEFAULT_BATCH_SIZE, DEFAULT_DISTILL_BUDGET_MINUTES,
                         DEFAULT_STUDENT, DEFAULT_TEMPERATURE)
from ..errors import TlearnError

CROPS = ("student", "teacher")
# hinton: today's recipe (Hinton et al. 2015): soft targets mixed with the labels, teacher outputs cached under
#   none/flip. consistent: Beyer et al. 2022 ("patient and consistent"): teacher and student judge the identical
#   live view, mixed up on every batch, soft targets only (T=1), a long schedule.
# stored: consistent teaching on the teacher's outputs for K stored views per image (Shen and Xing 2022, "Fast
#   Knowledge Distillation"), computed once and cached; views and epochs planned from a time budget.
# views 0: a live (or, under hinton with none/flip, cached un-augmented) teacher; None: planned from the budget.
RECIPES: dict[str, dict] = {
    "hinton": {"temperature": DEFAULT_TEMPERATURE, "alpha": DEFAULT_ALPHA, "epochs": 30, "augment": "crop",
               "crops": "student", "views": 0},
    "consistent": {"temperature": 1.0, "alpha": 1.0, "epochs": 150, "augment": "light", "crops": "teacher",
                   "views": 0},
    "stored": {"temperature": 1.0, "alpha": 1.0, "epochs": None, "augment": "light", "crops": "teacher",
               "views": None},
}
# no --recipe: stored for a pretrained (or file-weights) student, which can follow the teacher over a short
# schedule; hinton from random init (what paid for compact_cnn: docs/results.md#distillation)
DEFAULT_RECIPE = {"none": "hinton", "pretrained": "stored"}


def default_recipe(student_weights: str | None) -> str:
    return DEFAULT_RECIPE["none" if student_weights in (None, "none") else "pretrained"]


def recipe_default(name: str) -> str:
    """The recipes' defaults of one option for `--help`: 'hinton 4, consistent 1, stored 1'."""
    def shown(value):
        return "planned" if value is None else f"{value:g}" if isinstance(value, float) else str(value)

    return ", ".join(f"{recipe} {shown(values[name])}" for recipe, values in RECIPES.items())

MIXUP_ALPHA = 1.0  # consistent recipe: mixing ratio ~ Beta(1, 1), i.e. uniform, as in Beyer et al.'s configs
STUDENT_LR = {"none": 3e-3, "pretrained": 1e-3}  # a pretrained student's features survive a smaller step


@dataclass
class DistillConfig(RunOptions):
    teacher: str = option(help="a tlearn run directory (e.g. from `tlearn fit`)", kw_only=True)
    out: str = option(help="student run directory to write")
    data: str = option(help="data folder or CSV manifest with the teacher's classes", positional=True)
    batch_size: int = option(DEFAULT_BATCH_SIZE, "images per forward pass for teacher and evaluation",
                             check=checks.at_least(1, "--batch-size"))
    precision: str = option("auto", "teacher inference", choices=("auto", "bf16", "fp32"))
    student: str = option(DEFAULT_STUDENT, "student backbone: a registry name (compact_cnn: ~0.58 M params) or "
                                           "timm:<name>")
    student_weights: str | None = option("none", "none (random init), pretrained (the registry's), or a weights "
                                                  "file")
    # the student's input size: --image-size, as for every command (its older name --student-size still works)
    student_size: int | None = option(None, "the student's input size in px (default: the student's own, 32 for "
                                            "compact_cnn)", check=checks.at_least(8, "--image-size", " px"),
                                      flags=("--image-size",), deprecated=("--student-size",), metavar="PX")
    recipe: str | None = option(None, "hinton: soft targets mixed with the labels (teacher outputs cached under "
                                      "--augment none/flip); consistent: teacher and student see the identical "
                                      "augmented view, live, mixed up on every batch, loss = soft targets only, "
                                      "crops at the teacher's size, a long schedule; stored: consistent teaching "
                                      "on the teacher's outputs for --views stored random views per image, "
                                      "computed once and cached, views and epochs planned from --budget-minutes. "
                                      "The recipe sets the defaults of --temperature, --alpha, --epochs, --augment, "
                                      "--crops and --views; options given explicitly win (default: stored for a "
                                      "pretrained student, hinton from random init)", choices=tuple(RECIPES))
    temperature: float | None = option(None, "softening temperature T (default: "
                                             f"{recipe_default('temperature')})", check=checks.check_temperature)
    alpha: float | None = option(None, "weight of the teacher's soft targets, 1 - alpha on the labels (default: "
                                       f"{recipe_default('alpha')}; consistent is soft targets only)",
                                 check=checks.check_alpha)
    # weight of the feature hint (hint.py): the student also reproduces the teacher's pooled features; 0: off
    feature_weight: float = option(0.0, "also teach the teacher's pooled features (a FitNets hint through a "
                                        "training-only projection, weight BETA, e.g. 1); 0: off",
                                   check=checks.check_feature_weight, metavar="BETA")
    epochs: int | None = option(None, "an epoch covers the unlabeled images too (default: "
                                      f"{recipe_default('epochs')})", check=checks.at_least(1, "--epochs"))
    lr: float | None = option(None, "AdamW peak learning rate (warm-up, cosine decay) (default: "
                                    f"{STUDENT_LR['none']:g} from random init, {STUDENT_LR['pretrained']:g} for "
                                    "pretrained or file weights)")
    weight_decay: float = option(0.05)
    train_batch_size: int = option(64, check=checks.at_least(1, "--train-batch-size"))
    # none/flip use cached teacher outputs under hinton, others a live teacher (docs/results.md#distillation)
    augment: str | None = option(None, "student augmentation preset, as for fit (default: "
                                       f"{recipe_default('augment')}; crop: random crops, no flip). Under hinton the teacher "
                                       "judges each augmented batch, but with none or flip its outputs are cached. "
                                       "flip/light/medium/strong mirror images: not for data where left/right "
                                       "matters (traffic signs: use crop)", choices=AUGMENT_PRESETS)
    # crops cut at the "student"'s size (teacher sees them resized) or the "teacher"'s: docs/results.md#distillation
    crops: str | None = option(None, "resolution augmented crops are cut at: the student's (the teacher sees them "
                                     "resized to its size) or the teacher's (the student gets them downsampled, the "
                                     f"teacher at full detail) (default: {recipe_default('crops')})",
                               choices=CROPS)
    views: int | None = option(None, "store the teacher's outputs for K random views (crop box + mirror) per "
                                     "image, computed once (bf16 where it agrees with fp32), cached and reused by "
                                     "every student and seed; the student trains on those views with no teacher "
                                     f"in the loop; 0: a live teacher (default: {recipe_default('views')})",
                                check=checks.at_least(0, "--views"), metavar="K")
    budget_minutes: float | None = option(None, "plan the schedule (views, epochs) from measured costs to finish "
                                                "within M minutes, and stop at the deadline with the best student "
                                                f"on val (default: {DEFAULT_DISTILL_BUDGET_MINUTES:g} under "
                                                "--recipe stored when --epochs is not given; else none)",
                                          check=checks.at_least(0.01, "--budget-minutes", " min"), metavar="M")
    ema: float | None = option(None, "keep a moving average of the student's weights (e.g. 0.98), for both "
                                     "students", check=checks.check_decay, metavar="DECAY")
    unlabeled: str | None = option(None, "images without labels (searched recursively; thousands are fine: decoded "
                                         "once into the decoded-image cache), taught through the teacher's soft "
                                         "targets; images that are also val/test images are refused",
                                   metavar="DIR")
    # on by default: a distillation's gain is only known against the same student trained without the teacher
    student_alone: bool | None = option(None, "also train the same student without the teacher (RUN/student-alone) "
                                              "on the same labelled data, to measure the gain (default: on; "
                                              "--no-student-alone halves the training time)")
    latency_repeats: int = option(20, "timed runs per latency figure")
    latency_threads: int = option(1, "CPU threads for the latency measurement")

    def __post_init__(self) -> None:
        if self.recipe is None:
            self.recipe = default_recipe(self.student_weights)
        if self.recipe == "stored" and self.epochs is None and self.budget_minutes is None:
            self.budget_minutes = DEFAULT_DISTILL_BUDGET_MINUTES
        if self.recipe in RECIPES:  # an unknown recipe is refused by validate, naming the choices
            for name, value in RECIPES[self.recipe].items():
                if name == "epochs" and self.budget_minutes:
                    continue  # planned from the budget unless given
                if getattr(self, name) is None:
                    setattr(self, name, value)
        if self.student_alone is None:
            self.student_alone = True
        if self.lr is None:
            self.lr = STUDENT_LR["none" if self.student_weights in (None, "none") else "pretrained"]
        super().__post_init__()
        if self.augment == "strong" and (self.unlabeled or self.recipe == "consistent"):
            raise TlearnError("--augment strong mixes labels (mixup/cutmix) in the training loop and cannot be used "
                              "with --unlabeled or --recipe consistent (which mixes images itself); use light or "
                              "medium.")
        if self.consistent and self.alpha != 1.0:
            raise TlearnError(f"--recipe {self.recipe} learns from the teacher's soft targets only (alpha 1), not "
                              f"--alpha {self.alpha:g}; drop --alpha, or use --recipe hinton to mix in the labels.")
        if self.views and self.feature_weight:
            raise TlearnError("--feature-weight needs the teacher's features on each batch, which stored views do "
                              "not keep; use --views 0 for a live teacher, or drop --feature-weight.")

    @property
    def consistent(self) -> bool:
        """Consistent teaching: the identical (mixed) view, soft targets only (live, or on stored views)."""
        return self.recipe in ("consistent", "stored")

    @property
    def stored_views(self) -> bool:
        """The student trains on stored teacher views (a number given, or planned from the budget)."""
        return self.views is None or self.views > 0
