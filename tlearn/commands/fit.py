"""tlearn fit DATA --out RUN [--strategy S] [--backbone B] ..."""
from __future__ import annotations

from ..config import FitConfig
from . import examples
from .options import add_config_arguments, add_json, config_from_args
from .output import emit, split_lines


def add_fit_arguments(p, exclude: tuple[str, ...] = ()) -> None:
    """FitConfig's options (every command that trains with fit's options: fit, study)."""
    add_config_arguments(p, FitConfig, exclude=("data", "out", *exclude))


def register(sub) -> None:
    p = sub.add_parser("fit", help="train a classifier on a folder of images",
                       description="Train on DATA (train/ [val/ test/] class folders, a flat class tree, or a CSV).",
                       **examples("tlearn fit flowers --out runs/flowers        # linear probe, the default",
                                  "tlearn fit flowers --out runs/flowers-ft --strategy finetune --epochs 10",
                                  "tlearn fit flowers --out runs/flowers-auto --strategy auto --budget-minutes 20"))
    add_config_arguments(p, FitConfig)
    add_json(p, "print the val/test figures and the run's path as JSON instead of a short summary")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..fitting import fit_config
    from ..report.findings import findings_lines, findings_summary

    result = fit_config(config_from_args(FitConfig, args))
    if result is None:  # a torchrun worker other than rank 0: rank 0 writes and reports the run
        return 0
    m = result.metrics
    summary = split_summary(m)
    if m.get("groups", {}).get("shared_count"):
        summary["groups_in_two_splits"] = m["groups"]["shared_count"]
    findings_summary(summary, m)  # leakage (figures without copies), recipe, the probe's advice
    summary.update(train_seconds=m["train_seconds"], phase_seconds=m["phase_seconds"], skipped=len(m["skipped"]),
                   run=str(result.path))
    lines = split_lines(summary) + [f"trained in {m['train_seconds']:.1f} s"
                                    + (f"; {summary['skipped']} unreadable file(s) skipped" if summary["skipped"] else "")]
    lines += findings_lines(m)  # leakage with the figures without copies, the recipe, the probe's advice
    lines += probe_lines(result.strategy.details, "val" in m)
    if summary.get("groups_in_two_splits"):
        lines.append(f"warning: {summary['groups_in_two_splits']} group(s) appear in two splits (metrics.json)")
    emit(args.json, summary, lines + [f"run: {result.path} (report.html, metrics.json)"])
    return 0


def probe_lines(details: dict, has_val: bool) -> list[str]:
    """What the linear probe chose without val (its settings' source) and with unlabeled images (kept or not)."""
    lines = []
    if not has_val and details.get("settings_from"):
        lines.append(f"no val: the probe's settings come from {details['settings_from']}")
    unlabeled = details.get("unlabeled")
    if unlabeled:
        lines.append(f"unlabeled images: {unlabeled['unlabeled_images']}; "
                     + (f"{unlabeled['chosen']} kept ({unlabeled['pseudo_labelled']} pseudo-labelled): "
                        if unlabeled["chosen"] != "none" else "not used: ") + unlabeled["why"])
    return lines


def split_summary(m: dict) -> dict:
    """val/test figures of a run's metrics.json as printed at the end of fit (and extend), intervals included."""
    return {split: {k: round(v, 4) for k, v in m[split].items() if isinstance(v, float)} | {"n": m[split]["n"]}
            | ({"ci95": {k: [round(x, 4) for x in v] for k, v in m[split]["ci95"].items()},
                "ci_unit": m[split]["ci_unit"]} if m[split].get("ci95") else {})
            for split in ("val", "test") if split in m}
