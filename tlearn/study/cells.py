"""One study cell = one strategy trained on one label fraction with one seed: a normal tlearn run directory.

A finished cell leaves STUDY/cells/<strategy>/<fraction>/seed<k>/cell.json holding its key (a hash of its
resolved FitConfig and its training subset) and its record; a re-run with the same key skips it, so a study that
was interrupted continues where it stopped.
"""
from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

from ..config import FitConfig
from ..constants import DEFAULT_RANK_METRIC
from ..errors import TlearnError
from ..runs.layout import CHECKPOINTS, write_json
from ..runtime import DEFAULT_DICOM_WINDOW
from .curves import read_curve
from .fractions import fraction_label

log = logging.getLogger("tlearn")
CELL_FILE = "cell.json"
METRIC_KEYS = ("accuracy", "balanced_accuracy", "macro_f1", "loss", "n")
# FitConfig fields that do not change a cell's result (where it is written, how it is shown or cached).
NOT_IN_KEY = ("data", "out", "cache_dir", "progress", "num_workers", "resume", "overwrite", "strict", "track",
              "tracking_uri")
# options added later: unset (or at their default), they keep existing cells' keys
UNSET_NOT_IN_KEY = ("budget_minutes", "group_by", "rank_sources", "empty_label", "memory_budget", "unlabeled")
DEFAULT_NOT_IN_KEY = {"dicom_window": DEFAULT_DICOM_WINDOW, "rank_metric": DEFAULT_RANK_METRIC}
PENDING_FILE = "cell.pending.json"  # written when a cell starts: its checkpoints may be resumed under that key


@dataclass(frozen=True)
class Cell:
    strategy: str
    fraction: float
    seed: int

    def folder(self, study_dir: Path) -> Path:
        return study_dir / "cells" / self.strategy / fraction_label(self.fraction) / f"seed{self.seed}"

    def __str__(self) -> str:
        return f"{self.strategy} {self.fraction:g} seed {self.seed}"


def cell_fit_config(cell: Cell, base: FitConfig, manifest: Path, study_dir: Path, fresh_cache: bool) -> FitConfig:
    """The cell's FitConfig: the study's shared options with this cell's data subset, strategy, seed and folder
    (which the study owns: it holds the cell's own files beside the run, hence overwrite)."""
    folder = cell.folder(study_dir)
    return replace(base, data=str(manifest), out=str(folder), strategy=cell.strategy, seed=cell.seed,
                   cache_dir=str(folder / "cache") if fresh_cache else base.cache_dir, overwrite=True)


def cell_key(cfg: FitConfig, manifest_sha256: str, fraction: float) -> str:
    """Hash of what decides a cell's result: its resolved fit options and the content of its subset."""
    options = {k: v for k, v in sorted(cfg.to_dict().items())
               if k not in NOT_IN_KEY and not (k in UNSET_NOT_IN_KEY and v is None)
               and not (k in DEFAULT_NOT_IN_KEY and v == DEFAULT_NOT_IN_KEY[k])}
    blob = json.dumps({"fit": options, "manifest": manifest_sha256, "fraction": fraction}, sort_keys=True,
                      default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def finished_record(folder: Path, key: str) -> dict | None:
    """The saved record when this cell already finished with the same key, else None."""
    path = folder / CELL_FILE
    if not path.is_file():
        return None
    try:
        saved = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return saved.get("record") if saved.get("key") == key else None


def run_cell(cell: Cell, cfg: FitConfig, n_train: int, key: str, study_dir: Path, fresh_cache: bool) -> dict:
    """Train the cell with tlearn.fit_config and return its record (metrics, seconds, epochs, validation curve)."""
    from ..fitting import fit_config  # late import: summaries and reports load without the training stack
    from ..train.checkpoint import clear_checkpoints

    folder = Path(cfg.out)
    resume = _resumable(folder, key)
    if resume:
        log.info("%s: resuming from its last checkpoint", cell)
        cfg = replace(cfg, resume=True)
    else:
        if folder.exists():
            shutil.rmtree(folder)  # a partial or outdated cell: start it again from nothing
        folder.mkdir(parents=True)
        write_json(folder / PENDING_FILE, {"key": key})
    start = time.perf_counter()
    try:
        try:
            run = fit_config(cfg)
        except TlearnError as exc:
            if not resume:
                raise
            log.warning("%s: cannot resume (%s); training it again from the start", cell, exc)
            shutil.rmtree(folder)
            folder.mkdir(parents=True)
            write_json(folder / PENDING_FILE, {"key": key})
            resume, cfg = False, replace(cfg, resume=False)
            start = time.perf_counter()
            run = fit_config(cfg)
    finally:
        if fresh_cache and cfg.cache_dir:
            shutil.rmtree(cfg.cache_dir, ignore_errors=True)
    record = make_record(cell, n_train, run.path, run.metrics, time.perf_counter() - start, study_dir)
    record["key"] = key
    record["resumed"] = resume
    write_json(folder / CELL_FILE, {"key": key, "record": record})
    clear_checkpoints(folder / CHECKPOINTS)  # only needed to resume; the model is saved
    (folder / PENDING_FILE).unlink(missing_ok=True)
    return record


def _resumable(folder: Path, key: str) -> bool:
    """An interrupted cell with the same key that left checkpoints behind."""
    try:
        pending = json.loads((folder / PENDING_FILE).read_text())
    except (OSError, json.JSONDecodeError):
        return False
    return pending.get("key") == key and (folder / CHECKPOINTS).is_dir()


def make_record(cell: Cell, n_train: int, run_dir: Path, metrics: dict, wall_seconds: float,
                study_dir: Path) -> dict:
    """What study.json keeps of a finished run: metrics per split, seconds, epochs and the validation curve."""
    curve = read_curve(run_dir / "history.csv", metrics.get("train_seconds"))
    record = {
        "strategy": cell.strategy, "fraction": cell.fraction, "seed": cell.seed, "n_train": n_train,
        "run": str(run_dir.relative_to(study_dir)),
        "train_seconds": metrics.get("train_seconds"),
        "wall_seconds": round(wall_seconds, 3),
        "epochs": curve[-1].epoch if curve else None,
        "curve": [p.to_dict() for p in curve],
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    for split in ("val", "test"):
        if split in metrics:
            record[split] = {k: metrics[split][k] for k in METRIC_KEYS if k in metrics[split]}
    return record
