"""The study's figures as PNG bytes (matplotlib, Agg backend): embedded in report.html and saved beside it."""
from __future__ import annotations

import io
from collections import defaultdict
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from .config import BASELINE  # noqa: E402

PALETTE = {"scratch": "#7f7f7f", "linear-probe": "#1f77b4", "finetune": "#d62728", "lp-ft": "#2ca02c",
           "gradual": "#9467bd"}
EXTRA_COLOURS = ["#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#bcbd22"]


def colours(strategies: Sequence[str]) -> dict[str, str]:
    extra = iter(EXTRA_COLOURS * 4)
    return {s: PALETTE.get(s) or next(extra) for s in strategies}


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def accuracy_vs_fraction(rows: Sequence[dict], split: str, title: str = "") -> bytes:
    """Mean accuracy per strategy against labelled fraction, with the min-max band over seeds."""
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    by = defaultdict(list)
    for r in rows:
        if r["accuracy_mean"] is not None:
            by[r["strategy"]].append(r)
    col = colours(list(by))
    for strategy, rs in by.items():
        rs = sorted(rs, key=lambda r: r["fraction"])
        x = [100 * r["fraction"] for r in rs]
        ax.plot(x, [r["accuracy_mean"] for r in rs], marker="o", color=col[strategy], label=strategy,
                lw=2.4 if strategy != BASELINE else 2.0, ls="--" if strategy == BASELINE else "-")
        ax.fill_between(x, [r["accuracy_min"] for r in rs], [r["accuracy_max"] for r in rs], color=col[strategy],
                        alpha=0.15, lw=0)
    fractions = sorted({100 * r["fraction"] for r in rows})
    if fractions and fractions[-1] / fractions[0] > 5:
        ax.set_xscale("log")
    ax.set_xticks(fractions, [f"{f:g}%" for f in fractions])
    ax.minorticks_off()
    ax.set_xlabel("labelled training images (% of the training split)")
    ax.set_ylabel(f"{split} accuracy (mean, band = min-max over seeds)")
    ax.set_title(title or "Accuracy vs labelled fraction")
    ax.grid(alpha=0.3)
    ax.legend()
    return _png(fig)


def curves(records: Sequence[dict], fraction: float, x: str, threshold: float | None = None) -> bytes:
    """Validation accuracy per epoch (x='epoch') or per training second (x='seconds'), one line per seed."""
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    chosen = [r for r in records if r["fraction"] == fraction and r.get("curve")]
    col = colours(list(dict.fromkeys(r["strategy"] for r in chosen)))
    labelled = set()
    for r in chosen:
        pts = r["curve"]
        label = None if r["strategy"] in labelled else r["strategy"]
        labelled.add(r["strategy"])
        ax.plot([p[x] for p in pts], [p["val_accuracy"] for p in pts], marker="o" if len(pts) < 30 else None,
                color=col[r["strategy"]], label=label, alpha=0.85, ms=3.5, lw=1.6,
                ls="--" if r["strategy"] == BASELINE else "-")
    if threshold is not None:
        ax.axhline(threshold, color="black", lw=0.8, ls=":", label=f"95% of {BASELINE}'s best")
    if x == "epoch":
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch" if x == "epoch" else "training seconds")
    ax.set_ylabel("validation accuracy")
    ax.set_title(f"Validation accuracy vs {'epoch' if x == 'epoch' else 'time'} ({100 * fraction:g}% of labels)")
    ax.grid(alpha=0.3)
    ax.legend()
    return _png(fig)
