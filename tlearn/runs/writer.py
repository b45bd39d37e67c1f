"""Writing a run directory: every job that produces a run goes through RunWriter (driven by tlearn.runs.pipeline).

start()   before training: refuse an OUT that is not a run (unless --overwrite); on a new run clear what an
          earlier run left there (files and checkpoints tlearn wrote, never others); on --resume check that the
          inputs recorded when the run started (backbone, weights, sample lists) are the same. run.json says
          "training" from here on, so an interrupted run is never read as a finished one; a finished run that
          is resumed stays "complete" until finish() (a failed resume leaves it readable).
finish()  model, classes, config, history, predictions, metrics, in that order, then run.json "complete".
The report is written above this layer, by the pipeline, after finish() (a report failure never loses the run).
"""
from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from safetensors.torch import save_file

from ..backbones.model import BackboneInfo, TransferModel, model_file_metadata
from ..config import library_versions
from ..constants import ALONE_DIR
from ..data.layout import DataSplits, Sample
from ..errors import TlearnError
from ..files import atomic_path
from ..hashing import stable_hash
from ..train.checkpoint import clear_checkpoints
from . import layout
from .run import Run

log = logging.getLogger("tlearn")


def save_model(model: TransferModel, path: Path, metadata: dict | None = None) -> None:
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    metadata = {**{k: str(v) for k, v in (metadata or {}).items()}, **model_file_metadata(model)}
    with atomic_path(path) as tmp:
        save_file(state, str(tmp), metadata=metadata)


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


def run_config(sections: dict, info: BackboneInfo, splits: DataSplits, precision: str, device: str) -> dict:
    """config.yaml, the one record of a run's options and phases: the job's sections (fit, strategy, then its
    own: rank, teacher, extend, lineage, task) with backbone, data, runtime and versions, in one order."""
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
            layout.check_out(self.out, overwrite, resume)

    def start(self, inputs: dict) -> None:
        """Called once the inputs are known to be usable, before training."""
        marker = layout.read_marker(self.out) if self.out.is_dir() else None
        if self.resume:
            self._check_resume(marker, inputs)
        elif self.is_main:
            self._clear()
        if self.is_main and not (self.resume and marker is not None and marker.get("status") == "complete"):
            self.out.mkdir(parents=True, exist_ok=True)
            layout.write_marker(self.out, "training", inputs)
        # a finished run that is resumed stays complete (and readable) until finish() starts replacing its files:
        # a resume that fails, on a damaged checkpoint or anything else, leaves it as it was

    def _check_resume(self, marker: dict | None, inputs: dict) -> None:
        if marker is None or not marker.get("inputs"):
            if (self.out / layout.CHECKPOINTS).is_dir():
                raise TlearnError(
                    f"cannot resume {self.out}: {self.out / layout.MARKER} records no inputs (an older run format), "
                    "so its checkpoints cannot be checked against the backbone, weights and images. Rerun without "
                    "--resume to train from the start, or use a new --out.")
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
               predictions: dict[str, tuple[Sequence[Sample], np.ndarray]],
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
