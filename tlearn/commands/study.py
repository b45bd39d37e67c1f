"""tlearn study DATA --out STUDY [--strategies ...] [--fractions ...] [--seeds N] [--budget-minutes M] ..."""
from __future__ import annotations

import json
from dataclasses import fields

from ..errors import TlearnError
from . import examples
from .fit import add_fit_arguments

PER_CELL = {"data", "out", "strategy", "seed"}


def _list(text: str, kind=str) -> list:
    try:
        return [kind(x.strip()) for x in text.split(",") if x.strip()]
    except ValueError:
        raise TlearnError(f"could not read {text!r} as a comma-separated list of {kind.__name__} values.") from None


def register(sub) -> None:
    p = sub.add_parser(
        "study", conflict_handler="resolve", help="measure what transfer buys over training from scratch",
        description="Train each strategy on nested, stratified fractions of the labelled training images, for "
                    "several seeds, and report whether transfer needs fewer labels, converges faster and reaches "
                    "higher accuracy than scratch (STUDY/report.html, summary.json, study.json). Re-running "
                    "keeps finished cells. Any `tlearn fit` option applies to every cell.",
        **examples("tlearn study flowers --out studies/flowers",
                   "tlearn study flowers --out studies/quick --strategies scratch,linear-probe --seeds 1"))
    p.add_argument("data", help="data folder or CSV manifest")
    p.add_argument("--out", required=True, help="study directory (re-run with the same one to resume)")
    add_fit_arguments(p, exclude=("strategy", "seed", "overwrite"))
    p.add_argument("--strategies", "--strategy", dest="strategies", default=None,
                   help="comma-separated (default: scratch,linear-probe,finetune,lp-ft, those available)")
    p.add_argument("--fractions", default="0.05,0.1,0.25,0.5,1.0",
                   help="labelled fractions of the training split, nested (default 0.05,0.1,0.25,0.5,1.0)")
    p.add_argument("--seeds", type=int, default=3, help="number of seeds, from --seed on (default 3)")
    p.add_argument("--seed", type=int, default=0, help="first seed (default 0)")
    p.add_argument("--budget-minutes", type=float, default=None,
                   help="the same wall-clock training budget for every cell, in minutes")
    p.add_argument("--min-per-class", type=int, default=2,
                   help="labelled images per class kept at every fraction (default 2)")
    p.add_argument("--warm-cache", dest="fresh_cache", action="store_false",
                   help="share the feature/image cache between cells (faster; seconds are then not cold starts)")
    p.add_argument("--report-only", action="store_true",
                   help="train nothing: write summary and report from the cells finished so far")
    p.set_defaults(func=run, progress=False)


def study_config_from_args(args):
    from ..config import FitConfig  # imported here: parsing must not pay for importing torch
    from ..study import StudyConfig

    known = {f.name for f in fields(FitConfig)} - PER_CELL
    fit = {k: v for k, v in vars(args).items() if k in known}
    return StudyConfig(
        data=args.data, out=args.out,
        strategies=_list(args.strategies) if args.strategies else None,
        fractions=_list(args.fractions, float), seeds=args.seeds, first_seed=args.seed,
        budget_minutes=args.budget_minutes, min_per_class=args.min_per_class, fresh_cache=args.fresh_cache,
        fit=fit, report_only=args.report_only,
    )


def run(args) -> int:
    from ..study import run_study

    result = run_study(study_config_from_args(args))
    s = result.summary
    print(json.dumps({k: s[k] for k in ("metric", "selected_strategy", "labels_saved", "labels_saved_strategy",
                                        "convergence_speedup",
                                        "convergence_speedup_strategy", "accuracy_gain", "accuracy_gain_strategy",
                                        "accuracy_gain_by_fraction", "max_over_strategies")}
                     | {"sentences": s["sentences"], "report": str(result.report)}, indent=2))
    return 0
