"""Writing a run directory: every command that produces a run (fit, distill, study cells) goes through RunWriter.

start()   before training: refuse an OUT that is not a run (unless --overwrite); on a new run clear what an
          earlier run left there (files and checkpoints tlearn wrote, never others); on --resume check that the
          inputs recorded when the run started (backbone, weights, sample lists) are the same. run.json says
          "training" from here on, so an interrupted run is never read as a finished one.
evaluate  val/test predictions and metrics of the trained model (evaluate_splits).
finish()  model, classes, config, history, predictions, metrics, in that order, then run.json "complete",
          then the report (a report failure never loses the run).
"""
from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from safetensors.torch import save_file

from ..backbones.model import BackboneInfo, TransferModel, model_file_metadata
from ..config import library_versions
from ..constants import ALONE_DIR
from ..data.layout import DataSplits, Sample
from ..data.multilabel import TASK_MULTILABEL, is_multilabel, label_matrix
from ..device import pick_device, resolve_precision
from ..errors import TlearnError
from ..evaluate.intervals import add_intervals, add_multilabel_intervals
from ..evaluate.metrics import classification_metrics
from ..evaluate.multilabel import choose_thresholds, multilabel_metrics
from ..evaluate.predict import predict_samples
from ..features.cache import default_cache_dir
from ..files import atomic_path
from ..hashing import stable_hash
from ..runtime import DEFAULT_DICOM_WINDOW
from ..train.checkpoint import clear_checkpoints
from . import layout
from .run import Run

log = logging.getLogger("tlearn")


def save_model(model: TransferModel, path: Path, metadata: dict | None = None) -> None:
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    metadata = {**{k: str(v) for k, v in (metadata or {}).items()}, **model_file_metadata(model)}
    with atomic_path(path) as tmp:
        save_file(state, str(tmp), metadata=metadata)


def settle_runtime(device: str, precision: str, cache_dir: str | None):
    """(torch device, resolved precision, cache folder): what every training command settles first."""
    torch_device = pick_device(device)
    cache = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
    return torch_device, resolve_precision(precision, torch_device), cache


def run_inputs(info: BackboneInfo, splits: DataSplits, strategy: str) -> dict:
    """What a resumed run must share with the run it continues (file contents are checked by the loop)."""
    backbone = info.to_dict()
    return json.loads(json.dumps({  # as run.json gives it back (lists, not tuples)
        "strategy": strategy,
        "backbone": {k: backbone[k] for k in ("name", "architecture", "weights", "weights_sha256", "data_config")},
        "data": {"root": str(splits.root), "classes": list(splits.classes),
                 **{split: stable_hash([[str(s.path), list(s.labels) if hasattr(s, "labels") else s.label]
                                        for s in splits.split(split)])
                    for split in ("train", "val", "test")}},
    }))


def _input_changes(saved: dict, current: dict) -> list[str]:
    changes = []
    if saved.get("strategy") != current["strategy"]:
        changes.append(f"strategy {saved.get('strategy')!r} -> {current['strategy']!r}")
    old, new = saved.get("backbone", {}), current["backbone"]
    if isinstance(old.get("data_config"), dict):  # runs from before DICOM support decoded with the default window
        old = {**old, "data_config": {"dicom_window": DEFAULT_DICOM_WINDOW, **old["data_config"]}}
    for key in ("name", "architecture", "weights", "weights_sha256", "data_config"):
        if old.get(key) != new[key]:
            changes.append("the input size, normalisation or DICOM window changed" if key == "data_config"
                           else f"backbone {key} {old.get(key)!r} -> {new[key]!r}")
    old, new = saved.get("data", {}), current["data"]
    for key in ("root", "classes"):
        if old.get(key) != new[key]:
            changes.append(f"data {key} {old.get(key)!r} -> {new[key]!r}")
    changes += [f"the {split} images (paths or labels) changed" for split in ("train", "val", "test")
                if old.get(split) != new[split]]
    return changes


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


def run_config(sections: dict, info: BackboneInfo, splits: DataSplits, precision: str, device: str) -> dict:
    """config.yaml: the given sections (fit, strategy, ...) with backbone, data, runtime and versions."""
    return {
        **{k: v for k, v in sections.items() if k in ("fit", "strategy")},
        "backbone": info.to_dict(),
        "data": {"root": splits.root, "val_source": splits.val_source, "counts": splits.counts(),
                 "classes": splits.classes,
                 **({"group_by": splits.group_by} if splits.group_by else {}),
                 **({"groups": {name: len({s.group for s in splits.split(name) if s.group is not None})
                                for name in ("train", "val", "test")}} if splits.has_groups else {})},
        **{k: v for k, v in sections.items() if k not in ("fit", "strategy")},
        "precision": precision,
        "device": str(device),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "versions": library_versions(),
    }


class RunWriter:
    """One run directory, from the start of training to its completion."""

    def __init__(self, out: str | Path, *, overwrite: bool = False, resume: bool = False,
                 nested: Sequence[str] = (ALONE_DIR,), is_main: bool = True):
        self.out = Path(out)
        self.resume, self.overwrite, self.nested, self.is_main = resume, overwrite, tuple(nested), is_main
        if is_main:  # the other torchrun processes neither write nor judge OUT (rank 0 may be writing it)
            layout.check_out(self.out, overwrite)

    def start(self, inputs: dict) -> None:
        """Called once the inputs are known to be usable, before training."""
        marker = layout.read_marker(self.out) if self.out.is_dir() else None
        if self.resume:
            self._check_resume(marker, inputs)
        elif self.is_main:
            self._clear()
        if self.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            layout.write_marker(self.out, "training", inputs)

    def _check_resume(self, marker: dict | None, inputs: dict) -> None:
        if marker is None or not marker.get("inputs"):
            if (self.out / layout.CHECKPOINTS).is_dir():
                log.warning("--resume: %s records no inputs (written by an older tlearn); the backbone, weights "
                            "and images cannot be checked against its checkpoints", self.out)
            return
        changes = _input_changes(marker["inputs"], inputs)
        if changes:
            raise TlearnError(
                f"cannot resume {self.out}: {'; '.join(changes)} since its checkpoints were written. Rerun without "
                "--resume to train from the start, or use a new --out.")

    def _clear(self) -> None:
        """Remove what an earlier run wrote here (the files its run.json lists, its checkpoints, the nested runs
        named), so none of it stays beside the new run; files tlearn did not write are kept."""
        if self.out.is_dir():
            _clear_folder(self.out, self.nested)
        leftovers = clear_checkpoints(self.out / layout.CHECKPOINTS)
        if leftovers:
            raise TlearnError(f"{leftovers[0]} holds files tlearn did not write, where this run writes its "
                              "checkpoints; move them away (tlearn does not delete them) or use a new --out.")

    def finish(self, model: TransferModel, classes: list[str], config: dict, history: list[dict], metrics: dict,
               predictions: dict[str, tuple[Sequence[Sample], np.ndarray]], report: bool = True,
               extra_files: dict[str, Callable[[Path], None]] | None = None) -> Run:
        """Write the run in one order, the model first; run.json says complete only when all is on disk.

        extra_files: more files of the run (name -> write(path)), e.g. the linear probe's feature statistics."""
        out = self.out
        extra_files = extra_files or {}
        inputs = (layout.read_marker(out) or {}).get("inputs")
        files = [layout.MODEL, layout.CLASSES, layout.CONFIG, layout.HISTORY, layout.METRICS, layout.REPORT,
                 *(f"{layout.PREDICTIONS}/{split}.csv" for split in predictions), *extra_files]
        layout.write_marker(out, "writing", inputs, files)  # listed first: a crash leaves them for the next run
        save_model(model, out / layout.MODEL)
        for name, write in extra_files.items():
            write(out / name)
        layout.write_json(out / layout.CLASSES, classes)
        layout.write_yaml(out / layout.CONFIG, config)
        layout.write_history(out / layout.HISTORY, history)
        thresholds = layout.task_thresholds(config, classes)
        for split, (samples, probs) in predictions.items():
            layout.write_predictions(out / layout.PREDICTIONS / f"{split}.csv", samples, probs, classes, thresholds)
        layout.write_json(out / layout.METRICS, metrics)
        layout.write_marker(out, "complete", inputs, files)
        if report:
            log.info("run written to %s (%.1fs)", out, metrics.get("total_seconds", 0.0))
            from ..report import write_report_safely  # after completion: a report failure never loses a run

            write_report_safely(out)
        return Run(out)


def _clear_folder(folder: Path, nested: Sequence[str] = ()) -> None:
    files = layout.written_files(folder)
    if not files and not any((folder / name).is_dir() for name in nested):
        return
    marker = layout.read_marker(folder) or {}
    layout.write_marker(folder, "training", marker.get("inputs"), files)  # a crash here leaves them listed
    for name in files:
        (folder / name).unlink(missing_ok=True)
    _remove_if_empty(folder / layout.PREDICTIONS)
    for name in nested:
        child = folder / name
        if layout.is_run(child):
            _clear_folder(child)
            clear_checkpoints(child / layout.CHECKPOINTS)
            (child / layout.MARKER).unlink(missing_ok=True)
            _remove_if_empty(child)


def _remove_if_empty(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:
        pass
