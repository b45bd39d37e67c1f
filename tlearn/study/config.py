"""StudyConfig: everything that defines a transfer study, saved resolved in STUDY/study.json."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

from ..config import FitConfig
from ..errors import TlearnError

DEFAULT_STRATEGIES = ("scratch", "linear-probe", "finetune", "lp-ft")
DEFAULT_FRACTIONS = (0.05, 0.1, 0.25, 0.5, 1.0)
BASELINE = "scratch"
BUDGET_FIELD = "max_seconds"  # FitConfig's wall-clock training budget, which --budget-minutes sets


@dataclass
class StudyConfig:
    """strategy x fraction x seed cells, each a `tlearn fit` with the same options and budget."""

    data: str
    out: str
    strategies: list[str] | None = None  # None: those of DEFAULT_STRATEGIES that are registered
    fractions: list[float] = field(default_factory=lambda: list(DEFAULT_FRACTIONS))
    seeds: int = 3  # seeds first_seed .. first_seed + seeds - 1; each draws its own nested subsets
    first_seed: int = 0
    budget_minutes: float | None = None  # the same wall-clock training budget for every cell
    min_per_class: int = 2  # labelled images kept per class at any fraction (the linear probe's CV needs 2)
    fresh_cache: bool = True  # each cell starts with an empty cache, so its seconds are a cold start
    fit: dict = field(default_factory=dict)  # FitConfig fields shared by all cells (backbone, epochs, ...)
    report_only: bool = False  # train nothing: summarise and report the cells that have finished so far

    def __post_init__(self) -> None:
        if self.seeds < 1:
            raise TlearnError(f"--seeds must be at least 1, got {self.seeds}.")
        if self.min_per_class < 1:
            raise TlearnError(f"min_per_class must be at least 1, got {self.min_per_class}.")
        if self.budget_minutes is not None and self.budget_minutes <= 0:
            raise TlearnError(f"--budget-minutes must be positive, got {self.budget_minutes}.")
        known = {f.name for f in fields(FitConfig)} - {"data", "out", "strategy", "seed"}
        unknown = sorted(set(self.fit) - known)
        if unknown:
            raise TlearnError(f"fit option(s) {unknown} cannot be shared by the study's cells (data, out, strategy "
                              f"and seed are set per cell); allowed: {sorted(known)}.")

    @property
    def seed_list(self) -> list[int]:
        return list(range(self.first_seed, self.first_seed + self.seeds))

    def to_dict(self) -> dict:
        return asdict(self)
