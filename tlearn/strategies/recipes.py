"""Fine-tuning recipes and the one place that turns the data's facts into a recipe.

`--strategy finetune`, `extend`, `incremental`, `study`'s transfer cells (and so a distillation's teacher trained
with fit) fine-tune with choose_recipe's pick; `--strategy auto` orders its portfolio with the same recipes and
thresholds (tlearn.auto.rules). Options the user gives explicitly win over the recipe's settings.

  natural photos (no rule fires)               finetune      frozen BatchNorm, SGD 2e-2, L2-SP 0.1
  grey images, or far from ImageNet            train-bn      BatchNorm trained, AdamW 1e-3, a head-only epoch
  small images (short side <= 1/3 of input)    small-images  train-bn at a small input size, crops, 30 epochs
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

from .finetune import FineTune

# finetune as the `finetune` strategy's defaults (frozen BatchNorm, SGD with L2-SP), spelled out for the record
FROZEN_BN = {"freeze_bn": True, "optimizer": FineTune.defaults.optimizer, "lr": FineTune.defaults.lr,
             "l2_sp": FineTune.defaults.l2_sp, "augment": FineTune.defaults.augment,
             "epochs": FineTune.defaults.epochs}
# BatchNorm statistics trained, one AdamW rate for all layers, a head-only epoch first: 0.962 against 0.830 for
# FROZEN_BN on a brain-MRI set
TRAIN_BN = {"freeze_bn": False, "optimizer": "adamw", "lr": 1e-3, "lr_ratio": 1.0, "l2_sp": 0.0, "head_epochs": 1,
            "augment": FineTune.defaults.augment, "epochs": FineTune.defaults.epochs}
# TRAIN_BN at a small input size, crops without flips, 30 epochs: 0.952 test on 32 px traffic signs at 64 px
SMALL_IMAGES = {**TRAIN_BN, "augment": "crop", "epochs": 30}
# the recipes by the names other commands offer them under (tlearn incremental --recipe)
FINETUNE_RECIPES = {"finetune": FROZEN_BN, "train-bn": TRAIN_BN, "small-images": SMALL_IMAGES}
RECIPE_TEXT = {"finetune": "natural-photo recipe (frozen BatchNorm, SGD 2e-2, L2-SP 0.1)",
               "train-bn": "trained-BatchNorm recipe (BatchNorm trained, AdamW 1e-3, one head-only epoch)",
               "small-images": "small-image recipe (trained BatchNorm at a small input size, crops, 30 epochs)"}
# FitConfig fields a recipe sets (image_size: the small-image recipe's size)
RECIPE_FIELDS = ("freeze_bn", "optimizer", "lr", "lr_ratio", "l2_sp", "head_epochs", "augment", "epochs",
                 "image_size")

SMALL_SIDE_FRACTION = 1 / 3  # median short side below this share of the backbone's input: "small images"
TINY_SIDE = 48  # images at most this size are trained and predicted at SMALL_SIZE
SMALL_SIZE = 64  # 32 px traffic signs at 64 px: 0.952 test (README, gtsrb recipe)
GREY_FRACTION = 0.9
# Mean standardised shift of BatchNorm inputs: 0.15 on hymenoptera and flowers (natural photos), 0.28-0.38 on
# chest X-rays, pneumoniamnist and 32 px traffic signs (measured on the shared sets with efficientnet_lite0).
FAR_DOMAIN_SHIFT = 0.22
FEW_PER_CLASS = 30  # median train images per class at or below this
IMBALANCE = 2.5  # largest / smallest train class at or above this


def small_image_size(short_side: float, input_size: int) -> int:
    """Train/predict size for small images: SMALL_SIZE up to TINY_SIDE px, else 1.5x rounded up to 32."""
    if short_side <= TINY_SIDE:
        return SMALL_SIZE
    return min(input_size, 32 * math.ceil(1.5 * short_side / 32))


@dataclass
class RuleCheck:
    """One rule of the recipe choice: whether it fired and the measured value against its threshold."""

    name: str
    fired: bool
    fact: str

    def to_dict(self) -> dict:
        return {"rule": self.name, "fired": self.fired, "fact": self.fact}


def small_images_check(side: float | None, input_size: int) -> RuleCheck:
    limit = input_size * SMALL_SIDE_FRACTION
    fact = (f"median short side {side:g} px vs {limit:.0f} px (1/3 of the backbone's {input_size})" if side
            else "image sizes unreadable")
    return RuleCheck("small images", bool(side and side <= limit), fact)


def grey_check(grey: float | None) -> RuleCheck:
    fact = f"grey share {grey:.2f} vs {GREY_FRACTION}" if grey is not None else "no image decoded"
    return RuleCheck("grey images", grey is not None and grey >= GREY_FRACTION, fact)


def far_domain_check(shift: float | None) -> RuleCheck:
    fact = f"BatchNorm input shift {shift:.3f} vs {FAR_DOMAIN_SHIFT}" if shift is not None else "not measured"
    return RuleCheck("far from ImageNet", shift is not None and shift >= FAR_DOMAIN_SHIFT, fact)


def recipe_checks(facts, input_size: int) -> list[RuleCheck]:
    """The rules that pick a recipe, in the order they are tried (the first that fires chooses)."""
    return [small_images_check(facts.median_short_side, input_size), grey_check(facts.grey_fraction),
            far_domain_check(facts.bn_shift)]


@dataclass
class RecipeChoice:
    """The recipe fine-tuning uses on this data, the rule (and measured fact) that chose it, and what the user's
    own options replaced."""

    name: str  # a FINETUNE_RECIPES key
    settings: dict  # the FitConfig fields the recipe sets, after the user's explicit options
    fired_rule: str | None  # None: no rule fired, the natural-photo recipe
    fact: str  # the fact that chose it (or the facts that did not fire)
    checks: list[RuleCheck] = field(default_factory=list)
    overridden: dict = field(default_factory=dict)  # recipe settings the user's explicit options replaced

    @property
    def text(self) -> str:
        return RECIPE_TEXT[self.name]

    def reason(self) -> str:
        if self.fired_rule is None:
            return f"no data rule fired ({self.fact})"
        return f"{self.fired_rule}: {self.fact}"

    def to_dict(self) -> dict:
        return {"name": self.name, "description": self.text, "rule": self.fired_rule, "fact": self.fact,
                "reason": self.reason(), "settings": dict(self.settings), "overridden_by_user": dict(self.overridden),
                "rules": [c.to_dict() for c in self.checks]}


def choose_recipe(facts, user_options: dict, input_size: int, named: str = "auto") -> RecipeChoice:
    """The fine-tuning recipe for data with these facts, or the one `named` (--finetune-recipe) when not auto;
    user_options (FitConfig fields, None: not given) win."""
    checks = recipe_checks(facts, input_size)
    fired = next((c for c in checks if c.fired), None)
    if named != "auto":
        name, settings = named, dict(FINETUNE_RECIPES[named])
        if named == "small-images":
            side = facts.median_short_side
            settings["image_size"] = small_image_size(side, input_size) if side else SMALL_SIZE
        fired, fact = RuleCheck(f"--finetune-recipe {named}", True, "asked for by name"), "asked for by name"
    elif fired is None:
        name, settings = "finetune", dict(FROZEN_BN)
        fact = "; ".join(c.fact for c in checks)
    elif fired.name == "small images":
        name = "small-images"
        settings = {**SMALL_IMAGES, "image_size": small_image_size(facts.median_short_side, input_size)}
        fact = fired.fact
    else:
        name, settings, fact = "train-bn", dict(TRAIN_BN), fired.fact
    overridden = {k: user_options[k] for k in settings if user_options.get(k) is not None
                  and user_options[k] != settings[k]}
    settings = {k: (user_options[k] if user_options.get(k) is not None else v) for k, v in settings.items()}
    return RecipeChoice(name, settings, fired.name if fired else None, fact, checks, overridden)


def user_options(cfg) -> dict:
    """The recipe fields the user set explicitly (None: left to the recipe)."""
    return {k: getattr(cfg, k, None) for k in RECIPE_FIELDS}


def apply_recipe(cfg, choice: RecipeChoice):
    """cfg with the recipe's settings in the fields the user left unset."""
    return dataclasses.replace(cfg, **{k: v for k, v in choice.settings.items()
                                       if getattr(cfg, k, None) is None and hasattr(cfg, k)})


def inherited_fit(config: dict) -> dict:
    """A run's config.yaml 'fit' section with its fine-tuning recipe filled in where the user left a field
    unset: what extend carries over from a parent (the recipe finetune used, or for a probe the one the data's
    facts chose)."""
    fit = dict(config.get("fit", {}))
    recipe = ((config.get("strategy") or {}).get("recipe")
              or ((config.get("data_findings") or {}).get("recipe")) or {})
    for key, value in (recipe.get("settings") or {}).items():
        if key != "image_size" and fit.get(key) is None:  # the size lives in the parent's data config
            fit[key] = value
    return fit
