"""`tlearn study --selection`: which images to label, simulated on the study's data (tlearn.select.simulate): the
pool is the training split, accuracy is measured on the study's metric split (test, else val). Its figure,
table and labels-to-95% sit in the study report beside the labels-saved answer."""
from __future__ import annotations

import base64
import logging
from html import escape

import torch

from ..config import FitConfig
from ..data.layout import DataSplits
from ..device import settle_runtime
from ..errors import TlearnError
from ..features.extract import extract_features
from ..runs.source import load_source
from ..select.simulate import BASELINE, check_methods, simulate_selection
from .config import StudyConfig

log = logging.getLogger("tlearn")


def run_selection(cfg: StudyConfig, splits: DataSplits, base: FitConfig, split: str) -> dict:
    """The simulation's records and summary (study.json's "selection")."""
    try:
        methods = check_methods(cfg.selection)
    except ValueError as exc:
        raise TlearnError(str(exc)) from None
    torch.manual_seed(cfg.first_seed)
    device, precision, cache = settle_runtime(base.device, base.precision, base.cache_dir)
    module, info = load_source(base.backbone, base.weights, base.weights_sha256, image_size=base.image_size,
                               dicom_window=base.dicom_window)
    feats = {}
    for name in ("train", split):
        fs = extract_features(module, splits.split(name), info.data_config, precision=precision, device=device,
                              batch_size=base.batch_size, cache_dir=cache, num_workers=base.num_workers,
                              progress=base.progress, desc=f"{name} features")
        feats[name] = fs
        log.info("selection: %s features of %d images (%d from cache)", name, len(fs.samples), fs.from_cache)
    result = simulate_selection(feats["train"].features, feats["train"].labels, feats[split].features,
                                feats[split].labels, splits.classes, methods, cfg.budgets, cfg.seed_list, cache,
                                cfg.selection_probe)
    result.update(pool="train", pool_images=len(feats["train"].samples), metric_split=split,
                  backbone=info.name, input_size=info.data_config.input_size)
    return result


def selection_figure(summary: dict, split: str) -> bytes:
    """Mean accuracy per method against labels per class (band: min-max over seeds), the all-labels probe and
    95% of it as lines."""
    from .plots import EXTRA_COLOURS, _png, plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for k, method in enumerate(summary["methods"]):
        rs = [r for r in summary["rows"] if r["method"] == method]
        x = [r["per_class"] for r in rs]
        colour = "#7f7f7f" if method == BASELINE else EXTRA_COLOURS[k % len(EXTRA_COLOURS)]
        ax.plot(x, [r["accuracy_mean"] for r in rs], marker="o", color=colour, label=method,
                ls="--" if method == BASELINE else "-")
        ax.fill_between(x, [r["accuracy_min"] for r in rs], [r["accuracy_max"] for r in rs], color=colour,
                        alpha=0.15, lw=0)
    full = summary["full"]["accuracy"]
    ax.axhline(full, color="black", lw=0.8, label=f"all {summary['full']['labels']} labels")
    ax.axhline(summary["target"] * full, color="black", lw=0.8, ls=":", label=f"{summary['target']:.0%} of it")
    ax.set_xscale("log")
    ax.set_xticks(summary["budgets"], [str(b) for b in summary["budgets"]])
    ax.minorticks_off()
    ax.set_xlabel("labelled images per class (picked by each method)")
    ax.set_ylabel(f"{split} accuracy (linear probe; band = min-max over seeds)")
    ax.set_title("Which images to label: accuracy vs labels")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _png(fig)


_PROBE_WORDS = {"fixed": "each round's probe with the fixed settings, the same for every method",
                "cv": "each round's probe cross-validated on its labels, as fit does"}


def _f(x, fmt=".3f"):
    return "–" if x is None else format(x, fmt)


def selection_section(selection: dict) -> str:
    """The report's section: the figure, the table of methods x budgets, labels needed to reach 95%."""
    s, split = selection["summary"], selection["metric_split"]
    png = base64.b64encode(selection_figure(s, split)).decode()
    head = ("method", "labels / class", "labels", "seeds", f"{split} accuracy mean ± std", "min – max",
            "gain vs random (± std)", "balanced acc")
    body = []
    for r in s["rows"]:
        gain = (f"{r['gain_vs_random']:+.3f} ± {r['gain_std']:.3f}" if "gain_vs_random" in r else "–")
        cells = [escape(r["method"]), str(r["per_class"]), str(r["labels"]), str(r["seeds"]),
                 f"{_f(r['accuracy_mean'])} ± {_f(r['accuracy_std'])}",
                 f"{_f(r['accuracy_min'])} – {_f(r['accuracy_max'])}", gain, _f(r["balanced_accuracy_mean"])]
        body.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    need = []
    for m, n in s["labels_to_target"].items():
        text = f"{n['labels']} ({n['per_class']} per class)" if n["labels"] else f"more than {n['more_than']}"
        need.append(f"<li>{escape(m)}: {escape(text)}</li>")
    cold = [m for m in s["methods"] if m in ("margin", "badge")]
    note = (f" {', '.join(cold)}: the first round is the cold start (typiclust), later rounds use the probe."
            if cold else "")
    return f"""<h2 id="selection">Which images to label</h2>
<p>The training split ({selection['pool_images']} images) as an unlabeled pool: each method labels it a round at a
time (the budgets, in labels per class), the linear probe is fitted on the labels so far and scored on
<b>{escape(split)}</b> ({escape(_PROBE_WORDS.get(s.get('probe', 'cv'), ''))}). All {s['full']['labels']} labels give
{s['full']['accuracy']:.3f} (the probe cross-validated as fit does).{escape(note)}</p>
<div class="figs"><figure><img class="plot" data-plot="selection" alt="accuracy vs labels per class"
src="data:image/png;base64,{png}"><figcaption>{escape(split)} accuracy vs labels per class, by selection method
</figcaption></figure></div>
<table id="selection-table"><thead><tr>{''.join(f'<th>{h}</th>' for h in head)}</tr></thead>
<tbody>{''.join(body)}</tbody></table>
<p>Labels needed to reach {s['target']:.0%} of the all-labels accuracy ({s['target'] * s['full']['accuracy']:.3f}),
smallest budget whose mean reaches it:</p><ul id="labels-to-target">{''.join(need)}</ul>
"""


__all__ = ["run_selection", "selection_section", "selection_figure"]
