"""val/test predictions and metrics of a trained model, exactly as every run computes its headline metrics.

Single-label splits: classification metrics with bootstrap intervals. A multi-label task: per-label thresholds
chosen on val (else on out-of-fold train predictions), multi-label metrics and config.yaml's task section.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from ..backbones.model import TransferModel
from ..data.layout import DataSplits
from ..data.multilabel import TASK_MULTILABEL, is_multilabel, label_matrix
from .intervals import add_intervals, add_multilabel_intervals
from .metrics import classification_metrics
from .multilabel import choose_thresholds, multilabel_metrics
from .predict import predict_samples

log = logging.getLogger("tlearn")


@dataclass
class SplitResults:
    """Predictions and metrics of a model on the val/test splits."""

    metrics: dict = field(default_factory=dict)  # split -> classification metrics
    predictions: dict = field(default_factory=dict)  # split -> (samples, probabilities)
    skipped: list = field(default_factory=list)
    task: dict | None = None  # multi-label: config.yaml's task section (kind, thresholds and where they come from)


def evaluate_splits(model: TransferModel, splits: DataSplits, data_config, *, precision: str, device: str,
                    batch_size: int, cache_dir: Path | None, use_cache: bool = True, progress: bool = True,
                    who: str = "", out_of_fold: tuple | None = None) -> SplitResults:
    """val/test through predict_samples, exactly as every run computes its headline metrics (a multi-label
    task: tlearn.evaluate.multilabel, thresholds chosen on val, else on out_of_fold train predictions)."""
    if is_multilabel(splits.train):
        return _evaluate_multilabel(model, splits, data_config, out_of_fold, precision=precision, device=device,
                                    batch_size=batch_size, cache_dir=cache_dir, use_cache=use_cache,
                                    progress=progress)
    results = SplitResults()
    for split in ("val", "test"):
        samples = splits.split(split)
        if not samples:
            continue
        probs, fs = predict_samples(model, samples, data_config, precision=precision, device=device,
                                    batch_size=batch_size, cache_dir=cache_dir, use_cache=use_cache,
                                    progress=progress, desc=f"{split} {who or 'features'}")
        results.skipped += fs.skipped
        m = results.metrics[split] = add_intervals(classification_metrics(fs.labels, probs), fs.labels, probs,
                                                   [s.group for s in fs.samples])
        results.predictions[split] = (fs.samples, probs)
        log.info("%s%s: accuracy %.4f, balanced %.4f, macro-F1 %.4f (n=%d)", f"{who} " if who else "", split,
                 m["accuracy"], m["balanced_accuracy"], m["macro_f1"], m["n"])
    return results


def _evaluate_multilabel(model: TransferModel, splits: DataSplits, data_config, out_of_fold, **predict) -> SplitResults:
    results, classes = SplitResults(), splits.classes
    scored = {}
    for split in ("val", "test"):
        if splits.split(split):
            probs, fs = predict_samples(model, splits.split(split), data_config, desc=f"{split} features",
                                        multilabel=True, **predict)
            results.skipped += fs.skipped
            scored[split] = (fs.samples, probs)
    if scored.get("val") and len(scored["val"][0]):
        source, (samples, probs) = "val (Youden's J per label)", scored["val"]
    elif out_of_fold is not None:
        source, (samples, probs) = "train out-of-fold predictions (no val split; Youden's J per label)", out_of_fold
    else:
        source, samples, probs = "0.5 (no val split to choose thresholds on)", [], None
    thresholds = (choose_thresholds(label_matrix(samples, len(classes)), probs) if probs is not None
                  else [0.5] * len(classes))
    for split, (samples, probs) in scored.items():
        y = label_matrix(samples, len(classes))
        m = results.metrics[split] = add_multilabel_intervals(multilabel_metrics(y, probs, classes, thresholds), y,
                                                              probs, [s.group for s in samples])
        results.predictions[split] = (samples, probs)
        if m["n"]:
            log.info("%s: macro AUROC %s, micro AP %s, subset accuracy %.4f, Hamming loss %.4f (n=%d)", split,
                     _fmt(m["macro_auroc"]), _fmt(m["micro_average_precision"]), m["subset_accuracy"],
                     m["hamming_loss"], m["n"])
    values = {c: t for c, t in zip(classes, thresholds)}
    results.metrics["thresholds"] = {"source": source, "values": values}
    results.task = {"kind": TASK_MULTILABEL, "thresholds": values, "threshold_source": source}
    log.info("label thresholds chosen on %s", source)
    return results


def _fmt(x: float | None) -> str:
    return "–" if x is None else f"{x:.4f}"
