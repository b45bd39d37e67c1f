"""StudyConfig: everything that defines a transfer study, saved resolved in STUDY/study.json."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

from ..config import FitConfig, option
from ..errors import TlearnError

DEFAULT_STRATEGIES = ("scratch", "linear-probe", "finetune", "lp-ft")
DEFAULT_FRACTIONS = (0.05, 0.1, 0.25, 0.5, 1.0)
DEFAULT_BUDGETS = (1, 2, 5, 10)  # --selection: labels per class
BASELINE = "scratch"
BUDGET_FIELD = "max_seconds"  # FitConfig's wall-clock training budget, which --budget-minutes sets


def comma_list(text: str, kind=str) -> list:
    """A comma-separated list of `kind` values (how the command line gives --strategies and --fractions)."""
    try:
        return [kind(x.strip()) for x in text.split(",") if x.strip()]
    except ValueError:
        raise TlearnError(f"could not read {text!r} as a comma-separated list of {kind.__name__} values.") from None


@dataclass
class StudyConfig:
    """strategy x fraction x seed cells, each a `tlearn fit` with the same options and budget."""

    data: str = option(help="data folder or CSV manifest", positional=True)
    out: str = option(help="study directory (re-run with the same one to resume)")
    # None: those of DEFAULT_STRATEGIES that are registered
    strategies: list[str] | None = option(None, "comma-separated (default: "
                                                f"{','.join(DEFAULT_STRATEGIES)}, those available)",
                                          flags=("--strategies", "--strategy"), metavar="LIST")
    fractions: list[float] = option(help="labelled fractions of the training split, nested",
                                    default_factory=lambda: list(DEFAULT_FRACTIONS), metavar="LIST")
    # seeds first_seed .. first_seed + seeds - 1; each draws its own nested subsets
    seeds: int = option(3, "number of seeds, from --seed on")
    first_seed: int = option(0, "first seed", flags=("--seed",))
    budget_minutes: float | None = option(None, "the same wall-clock training budget for every cell, in minutes")
    # the linear probe's cross-validation needs 2
    min_per_class: int = option(2, "labelled images per class kept at every fraction")
    fresh_cache: bool = option(True, "share the feature/image cache between cells (faster; seconds are then not "
                                     "cold starts)", flags=("--warm-cache",))
    fit: dict = option(cli=False, default_factory=dict)  # FitConfig fields shared by all cells (backbone, epochs, ...)
    report_only: bool = option(False, "train nothing: write summary and report from the cells finished so far")
    # tlearn.select.simulate: which images to label, simulated on the training split (probe only, cached features)
    selection: list[str] | None = option(None, "also simulate choosing which images to label: comma-separated "
                                               "methods among random, typiclust, probcover, margin, badge (random is "
                                               "the baseline); without --strategies only this runs",
                                         metavar="LIST")
    selection_probe: str = option("fixed", "--selection: the probe each round is scored with: fixed (the probe's "
                                           "fixed settings for every method and budget; one fit a round) or cv "
                                           "(chosen by cross-validation as fit does)", choices=("fixed", "cv"))
    budgets: list[int] = option(help="--selection: labelled images per class, as rounds",
                                default_factory=lambda: list(DEFAULT_BUDGETS), metavar="LIST")

    def __post_init__(self) -> None:
        if isinstance(self.strategies, str):
            self.strategies = comma_list(self.strategies) or None
        if isinstance(self.fractions, str):
            self.fractions = comma_list(self.fractions, float)
        if isinstance(self.selection, str):
            self.selection = comma_list(self.selection) or None
        if isinstance(self.budgets, str):
            self.budgets = comma_list(self.budgets, int)
        if not self.budgets or any(b < 1 for b in self.budgets):
            raise TlearnError(f"--budgets must be positive whole numbers of labels per class, e.g. 1,2,5,10; got "
                              f"{self.budgets}.")
        self.budgets = sorted(set(self.budgets))
        if self.selection_probe not in ("fixed", "cv"):
            raise TlearnError(f"--selection-probe must be fixed or cv, not {self.selection_probe!r}.")
        if self.seeds < 1:
            raise TlearnError(f"--seeds must be at least 1, got {self.seeds}.")
        if self.min_per_class < 1:
            raise TlearnError(f"--min-per-class must be at least 1, got {self.min_per_class}.")
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
