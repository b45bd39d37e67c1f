"""From cell records to the three answers: fewer labels, faster convergence, higher accuracy than scratch.

Definitions (also written into summary.json and the report):
- accuracy: on the test split when the data has one, else on the validation split; mean over seeds.
- selected_strategy: the transfer strategy with the highest mean validation accuracy at the largest fraction.
  The headline answers are its figures: test is never used to choose, so its test figures are honest. The best
  figure over all strategies is kept too, under max_over_strategies and labelled so (it is optimistic).
- accuracy_gain: the selected strategy's accuracy minus scratch's, at the largest fraction (per fraction too).
- labels_saved: 1 - f/F, where F is the largest fraction and f the smallest fraction at which the transfer
  strategy's accuracy is at least scratch's accuracy at F (the share of labels it can do without).
- convergence_speedup: at the largest fraction, scratch's mean seconds until its validation accuracy first
  reaches 95% of scratch's best, divided by the transfer strategy's mean seconds to reach that same accuracy.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from .config import BASELINE
from .curves import CurvePoint, best_accuracy, plateau_point, time_to

THRESHOLD_SHARE = 0.95
SELECTION_SPLIT = "val"  # the split strategies are chosen on; test only reports

DEFINITIONS = {
    "accuracy": "accuracy on the {split} split, mean over seeds",
    "selected_strategy": "the transfer strategy with the highest mean validation accuracy at the largest labelled "
                         "fraction; labels_saved, convergence_speedup and accuracy_gain are its figures",
    "accuracy_gain": "accuracy of the selected strategy minus accuracy of scratch, at the largest labelled "
                     "fraction (accuracy_gain_by_fraction: the same at each fraction)",
    "max_over_strategies": "for each answer, the best figure of any transfer strategy on the {split} split: a maximum "
                           "over strategies, so optimistic (the choice itself used the figures it reports)",
    "labels_saved": "1 - f/F, where F is the largest labelled fraction and f the smallest fraction at which the "
                    "transfer strategy is at least as accurate as scratch trained on F (fractions tested only, so "
                    "a lower bound)",
    "convergence_speedup": "at the largest fraction: scratch's mean training seconds until its validation accuracy "
                           "first reaches 95% of scratch's best validation accuracy, divided by the transfer "
                           "strategy's mean seconds to reach that same accuracy",
    "plateau": "the first epoch whose validation accuracy is within 0.01 of the run's own best",
}


def fkey(fraction: float) -> str:
    return f"{fraction:g}"


def _mean(values) -> float | None:
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


def _curve(record: dict) -> list[CurvePoint]:
    return [CurvePoint(**p) for p in record.get("curve", [])]


def accuracy_of(record: dict, split: str, key: str = "accuracy") -> float | None:
    return record.get(split, {}).get(key)


def scratch_thresholds(records: Sequence[dict], baseline: str = BASELINE) -> dict[float, float]:
    """fraction -> 95% of scratch's best validation accuracy there (mean over seeds of each run's best)."""
    bests = defaultdict(list)
    for r in records:
        if r["strategy"] == baseline:
            best = best_accuracy(_curve(r))
            if best is not None:
                bests[r["fraction"]].append(best)
    return {f: THRESHOLD_SHARE * float(np.mean(v)) for f, v in bests.items()}


def add_convergence(records: Sequence[dict], thresholds: dict[float, float]) -> None:
    """Give each record its epochs/seconds to scratch's threshold and to its own plateau (in place)."""
    for r in records:
        curve = _curve(r)
        plateau = plateau_point(curve)
        conv = {"plateau": {"epochs": plateau.epoch if plateau else None,
                            "seconds": plateau.seconds if plateau else None,
                            "best_val_accuracy": best_accuracy(curve)}}
        if r["fraction"] in thresholds:
            conv["threshold"] = thresholds[r["fraction"]]
            conv["to_threshold"] = time_to(curve, thresholds[r["fraction"]])
        r["convergence"] = conv


def table_rows(records: Sequence[dict], split: str) -> list[dict]:
    """One row per strategy x fraction: accuracy mean/std/min/max over seeds, seconds, epochs, convergence."""
    groups: dict[tuple[str, float], list[dict]] = defaultdict(list)
    for r in records:
        groups[(r["strategy"], r["fraction"])].append(r)
    rows = []
    for (strategy, fraction), rs in groups.items():
        acc = [accuracy_of(r, split) for r in rs if accuracy_of(r, split) is not None]
        to_thr = [r.get("convergence", {}).get("to_threshold") or {} for r in rs]
        plateau = [r.get("convergence", {}).get("plateau") or {} for r in rs]
        rows.append({
            "strategy": strategy, "fraction": fraction, "seeds": len(rs),
            "n_train": _mean(r.get("n_train") for r in rs),
            "accuracy_mean": _mean(acc), "accuracy_std": float(np.std(acc)) if acc else None,
            "accuracy_min": min(acc, default=None), "accuracy_max": max(acc, default=None),
            "balanced_accuracy_mean": _mean(accuracy_of(r, split, "balanced_accuracy") for r in rs),
            "train_seconds_mean": _mean(r.get("train_seconds") for r in rs),
            "epochs_mean": _mean(r.get("epochs") for r in rs),
            "reached_threshold": sum(t.get("seconds") is not None for t in to_thr),
            "seconds_to_threshold_mean": _mean(t.get("seconds") for t in to_thr),
            "epochs_to_threshold_mean": _mean(t.get("epochs") for t in to_thr),
            "seconds_to_plateau_mean": _mean(p.get("seconds") for p in plateau),
            "epochs_to_plateau_mean": _mean(p.get("epochs") for p in plateau),
        })
    order = {s: i for i, s in enumerate(dict.fromkeys(r["strategy"] for r in records))}
    return sorted(rows, key=lambda row: (order[row["strategy"]], row["fraction"]))


def _ratio(num: float | None, den: float | None) -> float | None:
    return None if num is None or den is None or den <= 0 else num / den


def strategy_answers(rows: Sequence[dict], strategy: str, baseline: str = BASELINE) -> dict:
    """accuracy gains, labels saved and convergence speedup of one transfer strategy against the baseline."""
    row = {(r["strategy"], r["fraction"]): r for r in rows}
    fractions = sorted(f for s, f in row if s == strategy and (baseline, f) in row)
    gains = {fkey(f): _diff(row[(strategy, f)]["accuracy_mean"], row[(baseline, f)]["accuracy_mean"])
             for f in fractions}
    out: dict = {"accuracy_gain_by_fraction": gains}
    if not fractions:
        return out
    top = max(fractions)
    reference = row[(baseline, top)]["accuracy_mean"]
    needed = next((f for f in fractions if reference is not None
                   and (row[(strategy, f)]["accuracy_mean"] or 0.0) >= reference), None)
    known_gains = [g for g in gains.values() if g is not None]
    out.update(
        fraction_compared=top,
        accuracy=row[(strategy, top)]["accuracy_mean"],
        baseline_accuracy=reference,
        baseline_seconds_to_threshold=row[(baseline, top)]["seconds_to_threshold_mean"],
        accuracy_gain=gains[fkey(top)],
        min_accuracy_gain=min(known_gains, default=None),
        beats_scratch_at_every_fraction=bool(known_gains) and len(known_gains) == len(gains)
        and all(g > 0 for g in known_gains),
        labels_needed_fraction=needed,
        labels_saved=None if needed is None else 1.0 - needed / top,
        convergence_speedup=_ratio(row[(baseline, top)]["seconds_to_threshold_mean"],
                                   row[(strategy, top)]["seconds_to_threshold_mean"]),
        convergence_speedup_epochs=_ratio(row[(baseline, top)]["epochs_to_threshold_mean"],
                                          row[(strategy, top)]["epochs_to_threshold_mean"]),
        seconds_to_threshold=row[(strategy, top)]["seconds_to_threshold_mean"],
        epochs_to_threshold=row[(strategy, top)]["epochs_to_threshold_mean"],
    )
    return out


def _diff(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def _best(by_strategy: dict, name: str) -> tuple[float | None, str | None]:
    scored = [(v[name], s) for s, v in by_strategy.items() if v.get(name) is not None]
    return max(scored) if scored else (None, None)


def select_strategy(records: Sequence[dict], strategies: Sequence[str]) -> dict:
    """The transfer strategy with the highest mean validation accuracy at the largest fraction it was run at
    (ties: the first in `strategies`); never looks at test."""
    rows = [r for r in table_rows(records, SELECTION_SPLIT) if r["strategy"] in strategies]
    top = max((r["fraction"] for r in rows if r["accuracy_mean"] is not None), default=None)
    scores = {r["strategy"]: r["accuracy_mean"] for r in rows if r["fraction"] == top and r["accuracy_mean"] is not None}
    order = {s: i for i, s in enumerate(strategies)}
    chosen = min(scores, key=lambda s: (-scores[s], order[s]), default=None)
    return {"strategy": chosen, "split": SELECTION_SPLIT, "fraction": top, "val_accuracy": scores,
            "rule": f"highest mean {SELECTION_SPLIT} accuracy at the largest labelled fraction"}


def summarize(records: Sequence[dict], split: str, baseline: str = BASELINE) -> dict:
    """summary.json: the three answers of the strategy chosen on val, per-strategy answers, the best figure of
    any strategy (labelled as a maximum), table, definitions."""
    add_convergence(records, scratch_thresholds(records, baseline))
    rows = table_rows(records, split)
    strategies = sorted({r["strategy"] for r in records} - {baseline})
    has_baseline = any(r["strategy"] == baseline for r in records)
    by_strategy = {s: strategy_answers(rows, s, baseline) for s in strategies} if has_baseline else {}
    selection = select_strategy(records, strategies)
    chosen = selection["strategy"] if has_baseline else None
    summary: dict = {"metric": f"{split} accuracy", "baseline": baseline, "selected_strategy": chosen,
                     "selection": selection}
    if split == SELECTION_SPLIT:
        selection["note"] = (f"no test split: the strategy is chosen and measured on {split}, so its figures are "
                             "optimistic")
    picked = by_strategy.get(chosen, {})
    fractions = sorted({r["fraction"] for r in rows})
    for name in ("labels_saved", "convergence_speedup", "accuracy_gain"):
        summary[name] = picked.get(name)
        summary[f"{name}_strategy"] = chosen if picked.get(name) is not None else None
    summary["accuracy_gain_by_fraction"] = {fkey(f): picked.get("accuracy_gain_by_fraction", {}).get(fkey(f))
                                            for f in fractions}
    maxima: dict = {"note": definition("max_over_strategies", split), "strategies": len(by_strategy)}
    for name in ("labels_saved", "convergence_speedup", "accuracy_gain"):
        value, strategy = _best(by_strategy, name)
        maxima[name] = {"value": value, "strategy": strategy}
    maxima["accuracy_gain_by_fraction"] = {
        fkey(f): max((g for v in by_strategy.values()
                      if (g := v["accuracy_gain_by_fraction"].get(fkey(f))) is not None), default=None)
        for f in fractions
    }
    summary["max_over_strategies"] = maxima
    summary["thresholds"] = {fkey(f): t for f, t in sorted(scratch_thresholds(records, baseline).items())}
    summary["by_strategy"] = by_strategy
    summary["table"] = rows
    summary["definitions"] = {k: definition(k, split) for k in DEFINITIONS}
    summary["sentences"] = sentences(summary, split)
    return summary


def definition(name: str, split: str) -> str:
    return DEFINITIONS[name].format(split=split)


def _pct(x: float) -> str:
    return f"{100 * x:.0f}%"


def sentences(summary: dict, split: str) -> list[str]:
    """The three answers of the strategy chosen on val, in plain words (what the report and the CLI print)."""
    baseline = summary["baseline"]
    by = summary["by_strategy"]
    s = summary.get("selected_strategy")
    if s is None or "fraction_compared" not in by.get(s, {}):
        return [f"No '{baseline}' cells to compare with: the study has no baseline, so no answers."]
    rows = {(r["strategy"], r["fraction"]): r for r in summary["table"]}
    v = by[s]
    top = v["fraction_compared"]
    chosen = f"{s} (chosen on {summary['selection']['split']})"
    out = []
    if summary["labels_saved"] is None:
        out.append(f"Fewer labels: {chosen} did not match {baseline}'s accuracy at the largest fraction with "
                   "fewer labels.")
    else:
        need = v["labels_needed_fraction"]
        out.append(f"Fewer labels: {chosen} with {_pct(need)} of the labels is as accurate "
                   f"({rows[(s, need)]['accuracy_mean']:.3f}) as {baseline} with {_pct(top)} "
                   f"({v['baseline_accuracy']:.3f}): {_pct(summary['labels_saved'])} of the labels saved.")
    if summary["convergence_speedup"] is None:
        out.append(f"Faster convergence: not measured ({s} or {baseline} never reached 95% of {baseline}'s best "
                   "validation accuracy).")
    else:
        threshold = summary["thresholds"].get(fkey(top))
        out.append(f"Faster convergence: {chosen} reached {threshold:.3f} validation accuracy (95% of {baseline}'s "
                   f"best) after {v['seconds_to_threshold']:.0f} s of training, {baseline} after "
                   f"{v['baseline_seconds_to_threshold']:.0f} s: {summary['convergence_speedup']:.1f}x faster.")
    if summary["accuracy_gain"] is not None:
        line = (f"Higher accuracy: with {_pct(top)} of the labels {chosen} reaches {v['accuracy']:.3f} {split} "
                f"accuracy against {baseline}'s {v['baseline_accuracy']:.3f} ({summary['accuracy_gain']:+.3f}).")
        winners = [t for t, w in by.items() if w.get("beats_scratch_at_every_fraction")]
        if winners:
            line += " At every fraction, " + "; ".join(
                f"{t} beats {baseline} by at least {by[t]['min_accuracy_gain']:.3f}" for t in winners) + "."
        out.append(line)
    return out
