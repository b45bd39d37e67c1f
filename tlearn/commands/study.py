"""tlearn study DATA --out STUDY [--strategies ...] [--fractions ...] [--seeds N] [--budget-minutes M] ..."""
from __future__ import annotations

from dataclasses import fields

from ..study.config import StudyConfig
from . import examples
from .fit import add_fit_arguments
from .options import add_config_arguments, add_json, config_from_args
from .output import emit

PER_CELL = {"data", "out", "strategy", "seed"}


def register(sub) -> None:
    p = sub.add_parser(
        "study", conflict_handler="resolve", help="measure what transfer buys over training from scratch",
        description="Train each strategy on nested, stratified fractions of the labelled training images, for "
                    "several seeds, and report whether transfer needs fewer labels, converges faster and reaches "
                    "higher accuracy than scratch (STUDY/report.html, summary.json, study.json). Re-running "
                    "keeps finished cells. Any `tlearn fit` option applies to every cell.",
        **examples("tlearn study flowers --out studies/flowers",
                   "tlearn study flowers --out studies/quick --strategies scratch,linear-probe --seeds 1"))
    add_fit_arguments(p, exclude=("strategy", "seed", "overwrite"))
    add_config_arguments(p, StudyConfig, exclude=("fit",))  # after fit's: its --budget-minutes is the study's
    add_json(p, "print the headline figures and the report's path as JSON instead of the summary sentences")
    p.set_defaults(func=run, progress=False)


def study_config_from_args(args):
    """The StudyConfig of the parsed arguments: the study's own options, and fit's shared by every cell."""
    from ..config import FitConfig  # imported here: parsing must not pay for importing torch

    known = {f.name for f in fields(FitConfig)} - PER_CELL
    fit = {k: v for k, v in vars(args).items() if k in known}
    return config_from_args(StudyConfig, args, fit=fit)


def run(args) -> int:
    from ..study import run_study

    result = run_study(study_config_from_args(args))
    s = result.summary
    headline = {k: s[k] for k in ("metric", "selected_strategy", "labels_saved", "labels_saved_strategy",
                                  "convergence_speedup", "convergence_speedup_strategy", "accuracy_gain",
                                  "accuracy_gain_strategy", "accuracy_gain_by_fraction", "max_over_strategies")}
    if s.get("label_selection"):  # --selection: the simulation's summary (labels to 95%, gains over random)
        headline["label_selection"] = {k: s["label_selection"][k] for k in ("labels_to_target", "full", "rows")}
    emit(args.json, headline | {"sentences": s["sentences"], "report": str(result.report)},
         [*s["sentences"], f"report: {result.report}"])
    return 0
