"""Report figures drawn with matplotlib's object API (no pyplot, no global backend) and embedded as data URIs."""
from __future__ import annotations

import base64
import io

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator

from ..evaluate.binary import BinaryCurves
from ..evaluate.metrics import ReliabilityBins

SPLIT_COLOURS = {"train": "#6b7280", "val": "#2563eb", "test": "#dc2626"}
_OTHER_COLOURS = ["#059669", "#d97706", "#7c3aed", "#db2777", "#0891b2"]
DPI = 110


def split_colour(split: str, index: int = 0) -> str:
    return SPLIT_COLOURS.get(split, _OTHER_COLOURS[index % len(_OTHER_COLOURS)])


def _figure(width: float, height: float) -> Figure:
    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def _style(ax) -> None:
    ax.grid(True, color="#e5e7eb", linewidth=0.8)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.tick_params(labelsize=9)


def to_data_uri(fig: Figure) -> str:
    """PNG bytes of the figure as a data: URI (self-contained HTML, no files beside it)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, facecolor="white")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def learning_curves(history: list[dict], best_epoch: float | None = None) -> Figure | None:
    """Loss and accuracy per epoch, phase changes and the chosen epoch marked; None for fewer than two points."""
    x_key = "epoch"
    rows = [r for r in history if isinstance(r.get(x_key), float)]
    if len(rows) < 2:
        return None
    x = np.arange(1, len(rows) + 1) if len({r[x_key] for r in rows}) < len(rows) else [r[x_key] for r in rows]
    fig = _figure(9.5, 3.3)
    ax_loss, ax_acc = fig.subplots(1, 2)
    for key, colour, label in (("train_loss", "#6b7280", "train loss"), ("val_loss", "#2563eb", "val loss")):
        ys = [r.get(key) if isinstance(r.get(key), float) else np.nan for r in rows]
        if not np.all(np.isnan(ys)):
            ax_loss.plot(x, ys, marker="o", markersize=3, color=colour, label=label)
    ax_loss.set_xlabel("epoch", fontsize=9)
    ax_loss.set_ylabel("loss", fontsize=9)
    ax_loss.legend(fontsize=8, frameon=False)
    acc_keys = [k for k in ("train_accuracy", "val_accuracy") if any(isinstance(r.get(k), float) for r in rows)]
    for key in acc_keys:
        ys = [r.get(key) if isinstance(r.get(key), float) else np.nan for r in rows]
        ax_acc.plot(x, ys, marker="o", markersize=3, color="#6b7280" if key.startswith("train") else "#2563eb",
                    label=key.replace("_", " "))
    ax_acc.set_xlabel("epoch", fontsize=9)
    ax_acc.set_ylabel("accuracy", fontsize=9)
    if acc_keys:
        ax_acc.legend(fontsize=8, frameon=False)
    phases = [r.get("phase") for r in rows]
    for ax in (ax_loss, ax_acc):
        _style(ax)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        for i in range(1, len(rows)):
            if isinstance(phases[i], str) and phases[i] != phases[i - 1]:
                edge = (x[i - 1] + x[i]) / 2
                ax.axvline(edge, color="#9ca3af", linestyle=":", linewidth=1)
                ax.annotate(f"phase: {phases[i]}", (edge, 1), xycoords=("data", "axes fraction"), fontsize=7.5,
                            color="#6b7280", xytext=(3, -10), textcoords="offset points")
        if best_epoch is not None and x[0] <= best_epoch <= x[-1]:
            ax.axvline(best_epoch, color="#059669", linewidth=1.2, alpha=0.7)
    if best_epoch is not None and x[0] <= best_epoch <= x[-1]:
        ax_acc.annotate("model kept", (best_epoch, 0), xycoords=("data", "axes fraction"), fontsize=7.5,
                        color="#059669", xytext=(3, 4), textcoords="offset points")
    return fig


def reliability_diagram(bins_by_split: dict[str, ReliabilityBins], num_classes: int = 2) -> Figure:
    """Per split: accuracy against confidence per bin (bars) over the diagonal, and how many images each bin has.

    The confidence axis starts at the bin holding 1/num_classes: a top probability is never lower than that.
    """
    n = len(bins_by_split)
    first = next(iter(bins_by_split.values())).edges
    x_min = float(first[max(0, np.searchsorted(first, 1.0 / num_classes, side="right") - 1)])
    fig = _figure(min(max(5.2, 3.7 * n + 0.4), 11.0), 3.9)
    grid = fig.add_gridspec(2, n, height_ratios=[3, 1])
    for i, (split, rb) in enumerate(bins_by_split.items()):
        colour = split_colour(split, i)
        ax = fig.add_subplot(grid[0, i])
        width = np.diff(rb.edges)
        filled = rb.counts > 0
        ax.bar(rb.edges[:-1][filled], rb.accuracy[filled], width=width[filled], align="edge", color=colour,
               alpha=0.75, edgecolor="white", label="accuracy")
        ax.bar(rb.edges[:-1][filled], (rb.confidence - rb.accuracy)[filled], bottom=rb.accuracy[filled],
               width=width[filled], align="edge", color="none", edgecolor="#f59e0b", hatch="///", linewidth=0.6,
               label="gap to confidence")
        ax.plot([x_min, 1], [x_min, 1], "--", color="#374151", linewidth=1, label="perfect calibration")
        ax.set_xlim(x_min, 1)
        ax.set_ylim(0, 1)
        ax.set_title(f"{split}: ECE {rb.ece:.3f}  (n={int(rb.counts.sum())})", fontsize=10)
        ax.set_ylabel("accuracy" if i == 0 else "", fontsize=9)
        ax.tick_params(labelbottom=False)
        _style(ax)
        if i == 0:
            fig.legend(*ax.get_legend_handles_labels(), loc="outside upper center", ncols=3, fontsize=8,
                       frameon=False)
        hist = fig.add_subplot(grid[1, i], sharex=ax)
        hist.bar(rb.edges[:-1], rb.counts, width=width, align="edge", color=colour, alpha=0.5, edgecolor="white")
        hist.set_yscale("symlog", linthresh=1)
        hist.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        hist.set_xlabel("confidence (top probability)", fontsize=9)
        hist.set_ylabel("images" if i == 0 else "", fontsize=9)
        _style(hist)
    return fig


def roc_pr_curves(curves: dict[str, BinaryCurves], points: dict[str, dict], positive: str) -> Figure:
    """ROC and precision-recall curves per split, with the operating point at the decision threshold marked."""
    fig = _figure(9.0, 3.7)
    ax_roc, ax_pr = fig.subplots(1, 2)
    for i, (split, c) in enumerate(curves.items()):
        colour = split_colour(split, i)
        ax_roc.plot(c.fpr, c.tpr, color=colour, linewidth=1.8, label=f"{split} (AUROC {c.auroc:.3f})")
        ax_pr.plot(c.recall, c.precision, color=colour, linewidth=1.8, drawstyle="steps-post",
                   label=f"{split} (AP {c.average_precision:.3f})")
        ax_pr.axhline(c.prevalence, color=colour, linestyle=":", linewidth=1)
        p = points.get(split)
        if p:
            ax_roc.plot(1 - p["specificity"], p["sensitivity"], "o", color=colour, markersize=7,
                        markeredgecolor="black")
            if p["tp"] + p["fp"]:
                ax_pr.plot(p["sensitivity"], p["ppv"], "o", color=colour, markersize=7, markeredgecolor="black")
    ax_roc.plot([0, 1], [0, 1], "--", color="#9ca3af", linewidth=1)
    ax_roc.set_xlabel("false positive rate (1 - specificity)", fontsize=9)
    ax_roc.set_ylabel("true positive rate (sensitivity)", fontsize=9)
    ax_roc.set_title(f"ROC, positive class: {positive}", fontsize=10)
    ax_pr.set_xlabel("recall (sensitivity)", fontsize=9)
    ax_pr.set_ylabel("precision (PPV)", fontsize=9)
    ax_pr.set_title("precision-recall (dotted: prevalence)", fontsize=10)
    for ax in (ax_roc, ax_pr):
        ax.set_xlim(-0.01, 1.01)
        ax.set_ylim(-0.01, 1.01)
        ax.set_aspect("equal")
        ax.legend(fontsize=8, frameon=False, loc="lower right" if ax is ax_roc else "lower left")
        _style(ax)
    return fig
