"""The selection simulation `tlearn study --selection` runs: on a labelled set, label the pool (the train split) a
round at a time as each method would pick, fit the linear probe on the labels so far, score it on test.

Budgets are labels per class (x the number of classes = images). Every method runs as rounds over the budgets:
round k adds (b_k - b_{k-1}) x classes images given those labelled so far. typiclust, probcover and random pick
every round themselves; margin and badge need a probe, so their first round is the cold start (typiclust) and
later rounds are theirs. Probe-only, on cached features: cheap. Near copies are not looked for here (the
simulation sees features, not files).
"""
from __future__ import annotations

import logging
import time
from collections.abc import Sequence

import numpy as np

from ..evaluate.metrics import classification_metrics
from ..strategies.linear_probe import FIXED_TREATMENT, LinearProbe
from ..strategies.probe_cache import fit_probe
from .config import AUTO_COLD, LABELED_METHODS, METHODS
from .methods import Picker, choose, embed

log = logging.getLogger("tlearn")

BASELINE = "random"
TARGET = 0.95  # labels needed to reach this share of the all-labels probe's accuracy
SIM_METHODS = tuple(m for m in METHODS if m != "auto")


def check_methods(methods: Sequence[str]) -> list[str]:
    unknown = [m for m in methods if m not in SIM_METHODS]
    if unknown or not methods:
        raise ValueError(f"--selection: unknown method(s) {unknown}; choose among {', '.join(SIM_METHODS)}")
    return list(dict.fromkeys(methods))


# The probe each round is scored with: "fixed" (the probe's fixed settings, FIXED_TREATMENT and FIXED_C, classes
# weighted equally, for every method and budget: differences then come from the selection alone, not from a cross-validation on a handful of
# labels that the picks themselves skew; and a round costs a single fit) or "cv" (as `tlearn fit` chooses them).
# The all-labels reference is always fit's cross-validated probe.
PROBES = ("fixed", "cv")


def _probe(X, y, num_classes, seed, cache_dir, probe: str = "cv"):
    if probe == "fixed":
        # balanced: a round's picks may be uneven across classes, which would otherwise move the intercept alone
        return LinearProbe(seed=seed, features=FIXED_TREATMENT, class_weight="balanced").fit_fixed(X, y, num_classes)
    fitted, _ = fit_probe(LinearProbe(seed=seed), X, y, cache_dir, num_classes)
    return fitted


def _score(probe, X_test, y_test) -> dict:
    m = classification_metrics(y_test, probe.predict_proba(X_test))
    return {"accuracy": m["accuracy"], "balanced_accuracy": m["balanced_accuracy"]}


def run_rounds(method: str, z: np.ndarray, X: np.ndarray, y: np.ndarray, X_test: np.ndarray, y_test: np.ndarray,
               classes: Sequence[str], budgets: Sequence[int], seed: int, cache_dir=None,
               probe_kind: str = "fixed") -> list[dict]:
    """One method, one seed: a record per budget (labels per class)."""
    num_classes = len(classes)
    picker = Picker(len(X), range(len(X)))
    labelled: list[int] = []
    records, probe = [], None
    for per_class in sorted(budgets):
        target = min(per_class * num_classes, len(X))
        add = target - len(labelled)
        t = time.perf_counter()
        picker.picks = []
        if add > 0:
            how = AUTO_COLD if method in LABELED_METHODS and probe is None else method
            probs = probe.predict_proba(X) if how in LABELED_METHODS else None
            picks = choose(how, z, add, picker, labelled, seed, probs, classes)
            labelled += [p.index for p in picks]
        select_s = time.perf_counter() - t
        t = time.perf_counter()
        present = np.unique(y[labelled])
        if len(present) < 2:  # one class labelled: no probe, every image gets that class
            probe = None
            probs = np.zeros((len(y_test), num_classes))
            probs[:, present[0]] = 1.0
            m = classification_metrics(y_test, probs)
            records.append({"method": method, "seed": seed, "per_class": per_class, "labels": len(labelled),
                            "classes_labelled": 1, "accuracy": m["accuracy"],
                            "balanced_accuracy": m["balanced_accuracy"], "probe_settings": "one class: constant",
                            "select_seconds": round(select_s, 3), "probe_seconds": 0.0})
            continue
        probe = _probe(X[labelled], y[labelled], num_classes, seed, cache_dir, probe_kind)
        records.append({"method": method, "seed": seed, "per_class": per_class, "labels": len(labelled),
                        "classes_labelled": int(len(present)), **_score(probe, X_test, y_test),
                        "probe_settings": probe.settings_source, "C": probe.C_, "features": probe.treatment,
                        "select_seconds": round(select_s, 3), "probe_seconds": round(time.perf_counter() - t, 3)})
    return records


def summarize_selection(records: list[dict], full: dict, num_classes: int) -> dict:
    """Per method and budget: mean, std, min, max over seeds, and the gain over random (difference of means;
    spread: std over seeds of the seed-paired differences); per method: labels needed to reach TARGET x the
    all-labels probe's accuracy (the smallest budget whose mean reaches it)."""
    methods = list(dict.fromkeys(r["method"] for r in records))
    budgets = sorted({r["per_class"] for r in records})
    rows, needed = [], {}
    for m in methods:
        for b in budgets:
            rs = sorted((r for r in records if r["method"] == m and r["per_class"] == b), key=lambda r: r["seed"])
            acc = np.array([r["accuracy"] for r in rs])
            row = {"method": m, "per_class": b, "labels": int(np.mean([r["labels"] for r in rs])), "seeds": len(rs),
                   "accuracy_mean": float(acc.mean()), "accuracy_std": float(acc.std()),
                   "accuracy_min": float(acc.min()), "accuracy_max": float(acc.max()),
                   "balanced_accuracy_mean": float(np.mean([r["balanced_accuracy"] for r in rs]))}
            base = {r["seed"]: r["accuracy"] for r in records if r["method"] == BASELINE and r["per_class"] == b}
            paired = [r["accuracy"] - base[r["seed"]] for r in rs if r["seed"] in base]
            if m != BASELINE and paired:
                row["gain_vs_random"] = float(np.mean(paired))
                row["gain_std"] = float(np.std(paired))
            rows.append(row)
        goal = TARGET * full["accuracy"]
        reached = [r for r in rows if r["method"] == m and r["accuracy_mean"] >= goal]
        needed[m] = ({"per_class": reached[0]["per_class"], "labels": reached[0]["labels"]} if reached else
                     {"per_class": None, "labels": None, "more_than": max(budgets) * num_classes})
    return {"rows": rows, "labels_to_target": needed, "target": TARGET, "full": full, "methods": methods,
            "budgets": budgets, "baseline": BASELINE}


def simulate_selection(X: np.ndarray, y: np.ndarray, X_test: np.ndarray, y_test: np.ndarray, classes: Sequence[str],
                       methods: Sequence[str], budgets: Sequence[int], seeds: Sequence[int],
                       cache_dir=None, probe: str = "fixed") -> dict:
    """Every method x seed as rounds over budgets; the all-labels probe (cross-validated, as fit does); the
    summary. probe: how each round's probe is fitted (PROBES)."""
    if probe not in PROBES:
        raise ValueError(f"probe {probe!r}: choose one of {', '.join(PROBES)}")
    methods = check_methods(methods)
    start = time.perf_counter()
    full_probe = _probe(X, y, len(classes), seeds[0], cache_dir)
    full = {"labels": int(len(X)), **_score(full_probe, X_test, y_test), "probe_settings": full_probe.settings_source}
    records = []
    for seed in seeds:
        z = embed(X, seed)
        for m in methods:
            rs = run_rounds(m, z, X, y, X_test, y_test, classes, budgets, seed, cache_dir, probe)
            records += rs
            log.info("selection %s seed %d: %s", m, seed,
                     ", ".join(f"{r['per_class']}/class {r['accuracy']:.3f}" for r in rs))
    summary = summarize_selection(records, full, len(classes))
    return {"records": records, "summary": summary | {"probe": probe},
            "seconds": round(time.perf_counter() - start, 1)}
