"""The recipes --strategy auto tries: each an ordinary FitConfig setting, ordered by priority (highest first).

The rules (rules.py) raise or lower priorities and add variants; the search verifies every choice on val.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from ..config import FitConfig
from ..strategies.finetune import FineTune
from ..strategies.recipes import FROZEN_BN, TRAIN_BN  # defined once, with the rules that choose among them

# A candidate whose name is PROBE always runs first: it is the fallback when nothing else fits the budget.
PROBE = "probe"


@dataclass
class Candidate:
    name: str
    strategy: str  # linear-probe | finetune
    settings: dict  # FitConfig fields this candidate sets
    priority: float
    reasons: list[str] = field(default_factory=list)  # rules that moved it or created it

    @property
    def is_probe(self) -> bool:
        return self.strategy == "linear-probe"

    @property
    def total_epochs(self) -> int:
        """Epochs of its whole schedule (head-only epochs included); 1 for a probe."""
        if self.is_probe:
            return 1
        return int(self.settings.get("epochs") or FineTune.defaults.epochs) + int(self.settings.get("head_epochs") or 0)

    @property
    def head_epochs(self) -> int:
        return int(self.settings.get("head_epochs") or 0)

    def config(self, base: FitConfig, out: str) -> FitConfig:
        """The FitConfig this candidate trains with: the user's settings plus the recipe's."""
        return dataclasses.replace(base, strategy=self.strategy, out=out, budget_minutes=None, max_seconds=None,
                                   resume=False, **self.settings)

    def describe(self) -> str:
        """Its settings as the equivalent `tlearn fit` options."""
        parts = [f"--strategy {self.strategy}"]
        for key, value in self.settings.items():
            flag = "--" + key.replace("_", "-")
            if isinstance(value, bool):
                parts.append(flag if value else f"--no-{key.replace('_', '-')}")
            else:
                parts.append(f"{flag} {value:g}" if isinstance(value, float) else f"{flag} {value}")
        return " ".join(parts)

    def to_dict(self) -> dict:
        return {"name": self.name, "strategy": self.strategy, "settings": dict(self.settings),
                "priority": self.priority, "reasons": list(self.reasons)}

    @classmethod
    def from_dict(cls, d: dict) -> "Candidate":
        return cls(d["name"], d["strategy"], dict(d["settings"]), float(d["priority"]), list(d.get("reasons", [])))


def default_portfolio() -> list[Candidate]:
    """Before any rule: the probe, then fine-tuning with frozen and with trained BatchNorm, and a second rate
    for each (a short learning-rate sweep; successive halving drops the weaker early)."""
    return [
        Candidate(PROBE, "linear-probe", {}, 100.0),
        Candidate("ft-frozen-bn", "finetune", dict(FROZEN_BN), 10.0),
        Candidate("ft-train-bn", "finetune", dict(TRAIN_BN), 9.0),
        Candidate("ft-train-bn-lr3e-4", "finetune", {**TRAIN_BN, "lr": 3e-4}, 6.0),
        Candidate("ft-frozen-bn-lr5e-3", "finetune", {**FROZEN_BN, "lr": 5e-3}, 5.0),
    ]


def ordered(candidates: list[Candidate]) -> list[Candidate]:
    """Probes first (the first probe always runs), then fine-tuning candidates by priority; stable otherwise."""
    return sorted(candidates, key=lambda c: (not c.is_probe, -c.priority))
