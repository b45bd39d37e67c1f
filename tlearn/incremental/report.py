"""STUDY/incremental.html: the protocol's results on one self-contained page (the study report's look)."""
from __future__ import annotations

import json
from html import escape
from pathlib import Path

import numpy as np

from ..report.plots import _figure, _style, to_data_uri
from ..runs import layout
from ..study.plots import colours
from ..study.report import page_head

DEFINITIONS = {
    "accuracy matrix": "A[i][j]: accuracy after learning task i on the test images of task j's classes.",
    "final accuracy": "after the last task, on the test images of every class.",
    "average incremental accuracy": "mean over tasks of the accuracy after task i on the classes seen so far.",
    "forgetting": "mean over the earlier tasks of (best accuracy on them before the last task - accuracy after it).",
    "vs joint": "final accuracy minus that of training on all the data so far at once (linear probe for analytic, "
                "fine-tuning for lwf, replay and naive).",
}


def _pct(x) -> str:
    return "–" if x is None else f"{100 * x:.1f}"


def _seen_plot(study: dict) -> str:
    fig = _figure(6.4, 3.6)
    ax = fig.subplots()
    names = list(study["results"])
    palette = colours(names)
    for name in names:
        curves = np.array([r["seen_accuracy"] for r in study["results"][name]], dtype=float)
        x = np.arange(1, curves.shape[1] + 1)
        ax.plot(x, 100 * curves.mean(0), marker="o", color=palette[name], label=name,
                linestyle="--" if name.startswith("joint") else "-")
    ax.set_xlabel("tasks learned", fontsize=9)
    ax.set_ylabel(f"{study['split']} accuracy on classes seen (%)", fontsize=9)
    ax.set_xticks(range(1, len(study["tasks"]) + 1))
    ax.legend(fontsize=8, frameon=False)
    _style(ax)
    return to_data_uri(fig)


def _matrix_plot(study: dict) -> str:
    names = list(study["results"])
    fig = _figure(2.6 * len(names), 2.8)
    axes = np.atleast_1d(fig.subplots(1, len(names)))
    for ax, name in zip(axes, names):
        m = np.array([[np.nan if v is None else v for v in row] for row in study["results"][name][0]["matrix"]])
        ax.imshow(m, vmin=0, vmax=1, cmap="viridis")
        for (i, j), v in np.ndenumerate(m):
            if not np.isnan(v):
                ax.text(j, i, f"{100 * v:.0f}", ha="center", va="center", fontsize=8,
                        color="white" if v < 0.6 else "black")
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("task j (classes)", fontsize=8)
        ax.set_ylabel("after task i", fontsize=8)
        ax.set_xticks(range(m.shape[1]))
        ax.set_yticks(range(m.shape[0]))
        ax.tick_params(labelsize=8)
    return to_data_uri(fig)


def _table(summary: dict) -> str:
    head = ("method", "final acc %", "avg incremental %", "forgetting (pts)", "final - joint (pts)", "s / step",
            "joint s / step")
    rows = []
    for name, r in summary.items():
        sd = f" ± {100 * r['final_accuracy_sd']:.1f}" if r["final_accuracy_sd"] else ""
        gap = r.get("final_minus_joint")
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in (
            escape(name), _pct(r["final_accuracy"]) + sd, _pct(r["average_incremental_accuracy"]),
            _pct(r["forgetting"]), "–" if gap is None or name.startswith("joint") else f"{100 * gap:+.1f}",
            f"{r['seconds_per_step']:.1f}", "–" if "joint_seconds_per_step" not in r
            else f"{r['joint_seconds_per_step']:.1f}")) + "</tr>")
    return (f'<table id="summary"><thead><tr>{"".join(f"<th>{h}</th>" for h in head)}</tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table>')


def render(study: dict) -> str:
    data, cfg = study["data"], study["config"]
    tasks = "".join(f"<li>task {i}: {escape(', '.join(t))}</li>" for i, t in enumerate(study["tasks"]))
    definitions = "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in DEFINITIONS.items())
    return f"""{page_head(f"tlearn incremental: {data['root']}")}
<h1>Class-incremental learning: {escape(data['root'])}</h1>
<p class="sub">{len(data['classes'])} classes in {len(study['tasks'])} tasks (class order seed
{cfg['class_order_seed']}); {cfg['seeds']} seed(s); backbone {escape(str(cfg['backbone']))}; accuracy on the
<b>{study['split']}</b> split; {study['seconds']:.0f} s in all.</p>
{_table(study['summary'])}
<div class="figs">
<figure><img class="plot" data-plot="seen" alt="accuracy on the classes seen so far" src="{_seen_plot(study)}">
<figcaption>Accuracy on the classes seen so far, after each task (mean over seeds).</figcaption></figure>
<figure><img class="plot" data-plot="matrix" alt="accuracy matrices" src="{_matrix_plot(study)}">
<figcaption>Accuracy matrices (seed 0): row i = after task i, column j = classes of task j.</figcaption></figure>
</div>
<h2>Tasks</h2><ol start="0">{tasks}</ol>
<h2>Definitions</h2><dl>{definitions}</dl>
<h2>Configuration</h2><pre>{escape(json.dumps(cfg, indent=2))}</pre>
</body></html>
"""


def write_report(study: dict, path: Path) -> Path:
    layout.write_text(path, render(study))
    return path
