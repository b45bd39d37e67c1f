"""What tlearn finds about the data before it trains, and what it makes of it: the facts (cached with the
features), the fine-tuning recipe they choose (tlearn.strategies.recipes), and for the default linear probe,
when a rule fires, the `--strategy auto` command likely to gain, with a budget sized for this data.

fitting calls data_findings once the backbone is loaded; the record goes to metrics.json ('data_findings'),
config.yaml (the finetune recipe) and from there to the report and the printed summary.
"""
from __future__ import annotations

import dataclasses
import logging
import math
import shlex
import time
from dataclasses import dataclass

from ..features.facts import DataFacts, cached_facts
from ..strategies.recipes import RecipeChoice, choose_recipe, user_options
from .budget import CostModel

log = logging.getLogger("tlearn")

FINDINGS_STRATEGIES = ("finetune", "linear-probe")  # auto measures its own; the others take no recipe
MIN_BUDGET_MINUTES = 10
# the search runs the probe and a halving over several candidates; the winner's whole schedule must fit after
# them: twice the recommended recipe's own estimate (searches on the shared sets used 55-94% of their budget)
BUDGET_FACTOR = 2.0


@dataclass
class DataFindings:
    facts: DataFacts
    cached: bool  # the facts came from the cache
    recipe: RecipeChoice
    applied: bool  # the recipe sets this run's training (finetune); otherwise it is what finetune would use
    advice: dict | None  # the probe's suggestion when a rule fires
    seconds: float

    def to_dict(self) -> dict:
        return {"facts": self.facts.to_dict(), "facts_cached": self.cached, "recipe": self.recipe.to_dict(),
                "recipe_applied": self.applied, "advice": self.advice, "seconds": round(self.seconds, 3)}


def _ceil_to(x: float, step: int) -> int:
    return int(step * math.ceil(x / step))


def estimate_finetune_seconds(facts: DataFacts, choice: RecipeChoice, backbone, info, train_batch: int) -> float:
    """One fine-tune with the chosen recipe: decoding once (the decoded-image cache keeps it), then every epoch's
    forward+backward over train and forward over val, from a micro-benchmark at the recipe's input size."""
    size = int(choice.settings.get("image_size") or info.data_config.input_size)
    costs = CostModel(backbone, info.feature_dim, info.architecture, facts.decode_seconds_per_image,
                      batch=train_batch)
    epochs = int(choice.settings.get("epochs") or 0) + int(choice.settings.get("head_epochs") or 0)
    return (costs.decode_seconds(facts.n_train + facts.n_val)
            + epochs * costs.epoch_seconds(size, size, facts.n_train, facts.n_val))


def auto_advice(cfg, facts: DataFacts, choice: RecipeChoice, backbone, info) -> dict:
    """The `--strategy auto` command likely to gain over the probe, its budget and the expected time."""
    estimate = estimate_finetune_seconds(facts, choice, backbone, info, cfg.train_batch_size)
    budget = max(MIN_BUDGET_MINUTES, _ceil_to(BUDGET_FACTOR * estimate / 60, 5))
    out = f"{cfg.out.rstrip('/')}-auto"
    command = (f"tlearn fit {shlex.quote(str(cfg.data))} --strategy auto --budget-minutes {budget} "
               f"--out {shlex.quote(out)}")
    return {"rule": choice.fired_rule, "fact": choice.fact, "command": command, "budget_minutes": budget,
            "expected_minutes": budget, "finetune_estimate_seconds": round(estimate, 1),
            "finetune_command": f"tlearn fit {shlex.quote(str(cfg.data))} --strategy finetune",
            "recipe": choice.name,
            "text": (f"{choice.fired_rule} ({choice.fact}): a fine-tune is likely to beat this linear probe. "
                     f"Try `{command}` (about {budget} min: the search stops within its budget; one fine-tune "
                     f"with the {choice.name} recipe, the one `--strategy finetune` now picks here, is estimated "
                     f"at {estimate / 60:.0f} min).")}


def data_findings(cfg, splits, backbone, info, cache_dir) -> DataFindings | None:
    """The data's facts and the recipe they choose, for a finetune or linear-probe fit from pretrained weights
    (None otherwise)."""
    if cfg.strategy not in FINDINGS_STRATEGIES or cfg.weights == "none":  # random init: no pretrained statistics
        return None
    from ..data.multilabel import is_multilabel
    from .search import native_input_size

    start = time.perf_counter()
    data_config = dataclasses.replace(info.data_config, dicom_window=cfg.dicom_window)  # decoded as training will
    facts, cached = cached_facts(splits.train, splits.val, splits.classes, backbone, data_config, cache_dir,
                                 seed=cfg.seed)
    named = cfg.finetune_recipe if cfg.strategy == "finetune" else "auto"  # --finetune-recipe: a recipe by name
    choice = choose_recipe(facts, user_options(cfg), native_input_size(info), named)
    advice = None
    if cfg.strategy == "linear-probe" and choice.fired_rule is not None and not is_multilabel(splits.train):
        # (auto compares candidates by single-label accuracy: it refuses multi-label data)
        advice = auto_advice(cfg, facts, choice, backbone, info)
    findings = DataFindings(facts, cached, choice, cfg.strategy == "finetune", advice, time.perf_counter() - start)
    log.info("data facts (%s, %.1fs): %s", "cached" if cached else "measured", findings.seconds,
             "; ".join(c.fact for c in choice.checks))
    if cfg.strategy == "finetune":
        log.info("finetune recipe: %s, chosen by %s%s", choice.text, choice.reason(),
                 f"; your options replace {choice.overridden}" if choice.overridden else "")
    elif advice:
        log.warning("%s", advice["text"])
    return findings
