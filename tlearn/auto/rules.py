"""Data-driven rules: from DataFacts, reorder the portfolio, add variants and pick an input size.

A rule only changes which candidates run first (and so which ones a small budget reaches) and which variants
exist; every candidate is still judged on val, so a wrong rule costs time, not accuracy below what the search
finds. Each rule is recorded with the fact that triggered it (or did not), so its effect can be measured.
"""
from __future__ import annotations

from dataclasses import dataclass

# the recipe rules (thresholds, the facts they read, the small-image size): one definition, shared with
# finetune's recipe choice
from ..strategies.recipes import (FEW_PER_CLASS, IMBALANCE, SMALL_IMAGES, RuleCheck, far_domain_check, grey_check,
                                  small_image_size, small_images_check)
from .facts import DataFacts
from .portfolio import PROBE, Candidate, ordered


@dataclass
class RuleRecord:
    name: str
    fired: bool
    fact: str  # the measured value and the threshold
    effect: str  # what it changed (or would have)

    def to_dict(self) -> dict:
        return {"rule": self.name, "fired": self.fired, "fact": self.fact, "effect": self.effect}


def _bump(candidates: list[Candidate], match, amount: float, reason: str) -> None:
    for c in candidates:
        if match(c):
            c.priority += amount
            c.reasons.append(reason)


def _train_bn(c: Candidate) -> bool:
    return not c.is_probe and c.settings.get("freeze_bn") is False


def _frozen_bn(c: Candidate) -> bool:
    return not c.is_probe and c.settings.get("freeze_bn") is True


def _train_bn_rule(cands: list[Candidate], check: RuleCheck) -> RuleRecord:
    """A sign of a domain unlike ImageNet's (the check fired): trained-BatchNorm recipes move up."""
    if check.fired:
        _bump(cands, _train_bn, 3.0, f"{check.name} ({check.fact})")
        return RuleRecord(check.name, True, check.fact, "trained-BatchNorm recipes moved up")
    return RuleRecord(check.name, False, check.fact, "none")


def apply_rules(candidates: list[Candidate], facts: DataFacts, input_size: int, *, user_image_size: int | None,
                user_balancing: bool) -> tuple[list[Candidate], list[RuleRecord]]:
    """The portfolio after the rules (ordered) and one record per rule."""
    cands = [Candidate.from_dict(c.to_dict()) for c in candidates]
    records: list[RuleRecord] = []

    # small images: train and predict near their own size instead of upsampling them 7x
    small = small_images_check(facts.median_short_side, input_size)
    fact, fired = small.fact, small.fired
    if fired and user_image_size:
        records.append(RuleRecord("small images", False, fact, f"not applied: --image-size {user_image_size} given"))
    elif fired:
        size = small_image_size(facts.median_short_side, input_size)
        reason = f"small images ({fact})"
        cands.append(Candidate(f"{PROBE}-{size}", "linear-probe", {"image_size": size}, 99.0, [reason]))
        cands.append(Candidate(f"small-{size}", "finetune", {**SMALL_IMAGES, "image_size": size}, 30.0, [reason]))
        _bump(cands, _train_bn, 2.0, reason)
        records.append(RuleRecord("small images", True, fact,
                                  f"added a probe and the small-image recipe at {size} px, first among fine-tunes; "
                                  "trained BatchNorm before frozen"))
    else:
        records.append(RuleRecord("small images", False, fact, "none"))

    records.append(_train_bn_rule(cands, grey_check(facts.grey_fraction)))
    records.append(_train_bn_rule(cands, far_domain_check(facts.bn_shift)))

    fact = f"median {facts.median_per_class:g} train images per class vs {FEW_PER_CLASS}"
    if facts.median_per_class <= FEW_PER_CLASS:
        _bump(cands, _frozen_bn, 4.0, f"few images per class ({fact})")
        records.append(RuleRecord("few images per class", True, fact,
                                  "frozen-BatchNorm recipes (regularised towards the pretrained weights) moved up"))
    else:
        records.append(RuleRecord("few images per class", False, fact, "none"))

    fact = f"largest/smallest class {facts.imbalance:.2f} vs {IMBALANCE}"
    if facts.imbalance >= IMBALANCE and user_balancing:
        records.append(RuleRecord("class imbalance", False, fact, "not applied: --class-weights/--sampler given"))
    elif facts.imbalance >= IMBALANCE:
        reason = f"class imbalance ({fact})"
        top = next(c for c in ordered(cands) if not c.is_probe)
        cands.append(Candidate(f"{top.name}-cw", top.strategy, {**top.settings, "class_weights": "auto"},
                               top.priority - 0.5, [*top.reasons, reason]))
        records.append(RuleRecord("class imbalance", True, fact,
                                  f"added {top.name} with --class-weights auto, second among fine-tunes"))
    else:
        records.append(RuleRecord("class imbalance", False, fact, "none"))
    return ordered(cands), records
