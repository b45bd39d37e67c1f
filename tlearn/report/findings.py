"""What tlearn found about the data, in the report and the printed summary (not only in the log): leakage
across splits with the held-out figures without the copies, the fine-tuning recipe and the fact that chose it,
and the probe's advice when a rule fires. Read from metrics.json ('leakage', 'data_findings')."""
from __future__ import annotations


def _fmt(x) -> str:
    return "–" if x is None else f"{x:.3f}"


def leakage_lines(metrics: dict) -> list[str]:
    """The leakage warning and, per held-out split, its accuracy with and without the images copied from train."""
    leak = metrics.get("leakage") or {}
    if not (leak.get("exact_count") or leak.get("near_count")):
        return []
    lines = [f"LEAKAGE ACROSS SPLITS: val/test figures are optimistic. {leak.get('exact_count', 0)} image(s) "
             f"byte-identical in two splits; {leak.get('near_count', 0)} held-out image(s) with a near-copy in an "
             "earlier split (listed in metrics.json under 'leakage'). Remove the copies from val/test (or from "
             "train) so they measure unseen images."]
    for split, fig in (leak.get("without_copies") or {}).items():
        a, c = fig["all"], fig["without_copies"]
        lines.append(f"{split}: accuracy {_fmt(a['accuracy'])} (balanced {_fmt(a['balanced_accuracy'])}) on all "
                     f"{a['n']} images; {_fmt(c['accuracy'])} (balanced {_fmt(c['balanced_accuracy'])}) on the "
                     f"{c['n']} without a copy in train ({fig['copies']} copied).")
    return lines


def copy_free_rows(metrics: dict) -> list[dict]:
    """Rows for the report's metrics table: each held-out split's figures on its images without a copy in train
    (named apart from the split, so the headline keeps the split's own figure)."""
    rows = []
    for split, fig in ((metrics.get("leakage") or {}).get("without_copies") or {}).items():
        c = fig["without_copies"]
        rows.append({"split": f"{split} without copies", "note": f"{fig['copies']} copied from train left out",
                     "n": c["n"], "accuracy": c["accuracy"], "balanced_accuracy": c["balanced_accuracy"],
                     "source": "metrics.json (leakage)"})
    return rows


def findings_lines(metrics: dict) -> list[str]:
    """What tlearn found about the data, for the report and fit's printed summary (empty: nothing to say)."""
    lines = leakage_lines(metrics)
    found = metrics.get("data_findings") or {}
    recipe = found.get("recipe")
    if recipe and found.get("recipe_applied"):
        replaced = recipe.get("overridden_by_user") or {}
        lines.append(f"Fine-tuned with the {recipe['description']}, chosen by {recipe['reason']}."
                     + (f" Your options replaced the recipe's {', '.join(sorted(replaced))}." if replaced else ""))
    advice = found.get("advice")
    if advice:
        lines.append(advice["text"])
    return lines


def findings_summary(summary: dict, metrics: dict) -> dict:
    """fit's printed JSON summary with the findings: 'accuracy_without_copies' beside each held-out figure, and
    'leakage', 'recipe' and 'advice' entries when there is something to say."""
    leak = metrics.get("leakage") or {}
    if leak.get("exact_count") or leak.get("near_count"):
        summary["leakage"] = {"warning": leakage_lines(metrics)[0], "exact": leak.get("exact_count", 0),
                              "near": leak.get("near_count", 0)}
        for split, fig in (leak.get("without_copies") or {}).items():
            if split in summary:
                summary[split].update(accuracy_without_copies=fig["without_copies"]["accuracy"],
                                      balanced_accuracy_without_copies=fig["without_copies"]["balanced_accuracy"],
                                      n_without_copies=fig["without_copies"]["n"])
    found = metrics.get("data_findings") or {}
    recipe = found.get("recipe")
    if recipe and found.get("recipe_applied"):
        summary["recipe"] = {"name": recipe["name"], "chosen_by": recipe["reason"],
                             **({"replaced_by_you": recipe["overridden_by_user"]}
                                if recipe.get("overridden_by_user") else {})}
    if found.get("advice"):
        a = found["advice"]
        summary["advice"] = {"rule": a["rule"], "fact": a["fact"], "try": a["command"],
                             "expected_minutes": a["expected_minutes"]}
    return summary
