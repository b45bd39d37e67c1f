"""run_study: draw the nested label fractions, train every cell (skipping finished ones), summarise, report."""
from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass, fields
from pathlib import Path

from ..config import FitConfig
from ..constants import AUTO_STRATEGY
from ..data.layout import load_splits
from ..data.multilabel import refuse_multilabel
from ..errors import TlearnError
from ..runs.layout import write_json, write_text as atomic_write_text
from ..strategies import STRATEGIES
from .cells import Cell, cell_fit_config, cell_key, finished_record, run_cell
from .config import BASELINE, BUDGET_FIELD, DEFAULT_STRATEGIES, StudyConfig
from .fractions import check_fractions, fraction_label, manifest_text, nested_fractions
from .locks import claim, holder, release

log = logging.getLogger("tlearn")


@dataclass
class StudyResult:
    path: Path
    study: dict  # study.json
    summary: dict  # summary.json

    @property
    def report(self) -> Path:
        return self.path / "report.html"


def resolve_fit_options(cfg: StudyConfig) -> dict:
    """The FitConfig options every cell shares, with the study's time budget mapped onto the fit's own field."""
    options = dict(cfg.fit)
    if cfg.budget_minutes is not None:
        if BUDGET_FIELD not in {f.name for f in fields(FitConfig)}:
            raise TlearnError("--budget-minutes needs a training loop with a time budget, and this tlearn's "
                              "FitConfig has none; use --epochs to cap training instead.")
        if options.get(BUDGET_FIELD) not in (None, cfg.budget_minutes * 60):
            raise TlearnError(f"give either --budget-minutes or {BUDGET_FIELD}, not both.")
        options[BUDGET_FIELD] = cfg.budget_minutes * 60
    return options


def check_strategies(strategies: list[str] | None) -> list[str]:
    """The strategies to compare, all registered; None means the registered ones of DEFAULT_STRATEGIES."""
    if strategies is None:
        missing = [s for s in DEFAULT_STRATEGIES if s not in STRATEGIES]
        if missing:
            log.warning("default strategies %s are not available in this tlearn; studying the others", missing)
        strategies = [s for s in DEFAULT_STRATEGIES if s in STRATEGIES]
    if not strategies:
        raise TlearnError("--strategies is empty; name at least one, e.g. scratch,linear-probe.")
    available = [*STRATEGIES, AUTO_STRATEGY]  # auto: tlearn.auto's search over the registered strategies
    unknown = [s for s in strategies if s not in available]
    if unknown:
        raise TlearnError(f"unknown strategy(ies) {unknown} in --strategies; available: {', '.join(available)}.")
    if BASELINE not in strategies:
        log.warning("no '%s' in --strategies: the study has no baseline, so it cannot answer its three questions",
                    BASELINE)
    return list(dict.fromkeys(strategies))


def write_if_changed(path: Path, text: str) -> None:
    if not path.is_file() or path.read_text() != text:
        atomic_write_text(path, text)


def run_study(cfg: StudyConfig) -> StudyResult:
    """Train strategy x fraction x seed cells on DATA and write STUDY/{study.json, summary.json, report.html}.

    Finished cells (same key: strategy, fraction, seed, subset and fit options) are kept and skipped, and cells
    another process is training are left to it, so several processes can share one study.
    """
    out = Path(cfg.out)
    if out.exists() and not out.is_dir():
        raise TlearnError(f"--out {out} exists and is not a folder; choose another study directory.")
    only_selection = bool(cfg.selection) and cfg.strategies is None
    strategies = [] if only_selection else check_strategies(cfg.strategies)
    fractions = check_fractions(cfg.fractions)
    options = resolve_fit_options(cfg)
    base = FitConfig(data=cfg.data, out=str(out), **options)
    splits = load_splits(cfg.data, base.val_fraction, cfg.first_seed, base.group_by)  # one val split, every cell
    refuse_multilabel(splits, "study")
    split = "test" if splits.test else "val"
    out.mkdir(parents=True, exist_ok=True)

    plan: list[tuple[Cell, FitConfig, int, str]] = []
    for seed in cfg.seed_list if strategies else ():  # --selection alone trains no cells
        subsets = nested_fractions(splits.train, fractions, seed, cfg.min_per_class)
        for fraction in sorted(fractions, reverse=True):
            text = manifest_text(subsets[fraction], splits)
            manifest = out / "subsets" / f"seed{seed}" / f"{fraction_label(fraction)}.csv"
            write_if_changed(manifest, text)
            digest = hashlib.sha256(text.encode()).hexdigest()
            for strategy in strategies:
                cell = Cell(strategy, fraction, seed)
                cell_cfg = cell_fit_config(cell, base, manifest, out, cfg.fresh_cache)
                plan.append((cell, cell_cfg, len(subsets[fraction]), cell_key(cell_cfg, digest, fraction)))

    study = {
        "config": cfg.to_dict() | {"strategies": strategies, "fractions": fractions},
        "fit_options": options,
        "backbone": base.backbone,
        "data": {"root": splits.root, "classes": splits.classes, "counts": splits.counts(),
                 "val_source": splits.val_source},
        "metric_split": split,
        "cells": [],
    }
    if cfg.selection:
        from .selection import run_selection

        study["selection"] = run_selection(cfg, splits, base, split)
        write_json(out / "study.json", study)
    if plan:
        log.info("study of %d cells (%d strategies x %d fractions x %d seeds) on %s; accuracy on %s",
                 len(plan), len(strategies), len(fractions), cfg.seeds, splits.root, split)
    start = time.perf_counter()
    for i, (cell, cell_cfg, n_train, key) in enumerate(plan, start=1):
        record = finished_record(cell.folder(out), key)
        if record is not None:
            log.info("[%d/%d] %s: finished earlier, kept (%s accuracy %.3f)", i, len(plan), cell, split,
                     record.get(split, {}).get("accuracy", float("nan")))
        elif cfg.report_only:
            log.info("[%d/%d] %s: not finished, left out of the report", i, len(plan), cell)
            continue
        else:
            lock = out / "locks" / f"{cell.strategy}-{fraction_label(cell.fraction)}-seed{cell.seed}.lock"
            if not claim(lock):
                log.info("[%d/%d] %s: being trained by another process (%s); run again later to include it",
                         i, len(plan), cell, holder(lock))
                continue
            log.info("[%d/%d] %s: training on %d labelled images", i, len(plan), cell, n_train)
            try:
                record = run_cell(cell, cell_cfg, n_train, key, out, cfg.fresh_cache)
            finally:
                release(lock)
            log.info("[%d/%d] %s: %s accuracy %.3f, %.0f s (study %.0f s)", i, len(plan), cell, split,
                     record.get(split, {}).get("accuracy", float("nan")), record["train_seconds"] or 0,
                     time.perf_counter() - start)
        study["cells"].append(record)
        write_json(out / "study.json", study)
    if not study["cells"] and not study.get("selection"):
        raise TlearnError(f"no finished cells in {out} to report on; run the study without --report-only first.")
    return finish_study(out, study)


def finish_study(out: Path, study: dict) -> StudyResult:
    """summary.json, the figures and report.html from the cell records in `study`."""
    from .plots import accuracy_vs_fraction, curves
    from .report import render_report
    from .summary import fkey, summarize

    split = study["metric_split"]
    if not study["cells"]:  # --selection alone
        return _finish_selection_only(out, study)
    summary = summarize(study["cells"], split)
    if study.get("selection"):
        summary["label_selection"] = study["selection"]["summary"]
    write_json(out / "study.json", study)  # now with each cell's convergence figures
    write_json(out / "summary.json", summary)
    top = max(r["fraction"] for r in study["cells"])
    threshold = summary["thresholds"].get(fkey(top))
    figures = {
        "accuracy_vs_fraction": (accuracy_vs_fraction(summary["table"], split),
                                 f"{split} accuracy vs labelled fraction (mean over seeds; band: min-max)"),
        "accuracy_vs_epoch": (curves(study["cells"], top, "epoch", threshold),
                              f"validation accuracy per epoch, {100 * top:g}% of labels (one line per seed)"),
        "accuracy_vs_seconds": (curves(study["cells"], top, "seconds", threshold),
                                f"validation accuracy vs training seconds, {100 * top:g}% of labels"),
    }
    for name, (png, _) in figures.items():
        (out / "plots").mkdir(exist_ok=True)
        (out / "plots" / f"{name}.png").write_bytes(png)
    atomic_write_text(out / "report.html", render_report(study, summary, figures))
    for line in summary["sentences"]:
        log.info("%s", line)
    log.info("report: %s", out / "report.html")
    return StudyResult(out, study, summary)


def _finish_selection_only(out: Path, study: dict) -> StudyResult:
    """summary.json and report.html of a study that only simulated selection."""
    from .report import render_selection_report

    summary = {"metric": f"{study['metric_split']} accuracy", "label_selection": study["selection"]["summary"],
               "sentences": selection_sentences(study["selection"]["summary"])}
    for key in ("selected_strategy", "labels_saved", "labels_saved_strategy", "convergence_speedup",
                "convergence_speedup_strategy", "accuracy_gain", "accuracy_gain_strategy", "accuracy_gain_by_fraction",
                "max_over_strategies"):
        summary[key] = None
    write_json(out / "summary.json", summary)
    atomic_write_text(out / "report.html", render_selection_report(study))
    for line in summary["sentences"]:
        log.info("%s", line)
    log.info("report: %s", out / "report.html")
    return StudyResult(out, study, summary)


def selection_sentences(s: dict) -> list[str]:
    """One sentence per method: labels needed to reach the target, and the gain over random at the smallest
    budget."""
    lines = []
    low = s["budgets"][0]
    for m, need in s["labels_to_target"].items():
        reach = (f"reaches {s['target']:.0%} of the all-labels accuracy with {need['labels']} labels "
                 f"({need['per_class']} per class)" if need["labels"] else
                 f"does not reach {s['target']:.0%} of the all-labels accuracy within {need['more_than']} labels")
        row = next(r for r in s["rows"] if r["method"] == m and r["per_class"] == low)
        gain = (f"; at {low} per class {row['accuracy_mean']:.3f} ({row['gain_vs_random']:+.3f} vs random)"
                if "gain_vs_random" in row else f"; at {low} per class {row['accuracy_mean']:.3f}")
        lines.append(f"selection {m} {reach}{gain}.")
    return lines
