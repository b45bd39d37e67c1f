"""The run directory's format: its file names, the completion marker, and reading and writing its files.

RUN/
  run.json         {"format": 1, "status": "training" | "writing" | "complete", "inputs": {...}, "files": [...]}:
                   written first (status training) and rewritten last (complete); a run is readable only when
                   complete. "files" lists what tlearn wrote, the only files a later run in this folder deletes
  model.safetensors  the whole transfer model (backbone + head); config.yaml says how to rebuild it
  classes.json     class names in output order
  config.yaml      resolved config (data, backbone + weights sha256, strategy, hyper-parameters, seed, versions)
  history.csv      epoch, lr, train_loss, val_loss, val_accuracy, seconds
  predictions/<split>.csv  path, label, predicted, confidence, p:<class>... (for reports)
  metrics.json     {"val": {...}, "test": {...}, "train_seconds": s, "skipped": [...], ...}
  report.html      written after completion (a report failure never loses a run)
  checkpoints/     per-epoch checkpoints of the training loop (tlearn.train.checkpoint), for --resume
  head_stats.safetensors  linear-probe runs and their extensions: feature statistics (tlearn.features.statistics)
  exemplars.json   extensions with --replay: the exemplar images (paths + sha256) the run keeps

A folder with a run's files but no run.json (an older run format) is refused by require_complete, with the
file named. Torch-free: backbones and reports read runs through here.
"""
from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path

import yaml

from ..errors import TlearnError
from ..files import atomic_path, spreadsheet_row, spreadsheet_safe

MARKER = "run.json"
FORMAT = 1
MODEL, CLASSES, CONFIG, HISTORY, METRICS, REPORT = (
    "model.safetensors", "classes.json", "config.yaml", "history.csv", "metrics.json", "report.html")
PREDICTIONS, CHECKPOINTS = "predictions", "checkpoints"
REQUIRED = (CONFIG, CLASSES, MODEL)
HISTORY_FIELDS = ["epoch", "lr", "train_loss", "val_loss", "val_accuracy", "seconds"]
# file names may hold bytes that are not UTF-8 (Linux); they are written back as the same bytes
ENCODING = {"encoding": "utf-8", "errors": "surrogateescape"}


# ---- writing ---------------------------------------------------------------------------------------------------

def write_text(path: str | Path, text: str) -> None:
    """Atomically, as UTF-8; characters that came from undecodable file-name bytes are written as those bytes."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, **ENCODING)


def write_json(path: str | Path, obj) -> None:
    write_text(path, json.dumps(obj, indent=2, default=float) + "\n")


def write_yaml(path: str | Path, obj) -> None:
    write_text(path, yaml.safe_dump(obj, sort_keys=False))


def write_history(path: str | Path, rows: list[dict]) -> None:
    extra = [k for row in rows for k in row if k not in HISTORY_FIELDS]
    header = HISTORY_FIELDS + list(dict.fromkeys(extra))
    lines = [",".join(header)] + [",".join(_fmt(row.get(k, "")) for k in header) for row in rows]
    write_text(path, "\n".join(lines) + "\n")


def _fmt(v) -> str:
    return f"{v:.6g}" if isinstance(v, float) else spreadsheet_safe(str(v))


def write_predictions(path: str | Path, samples: Sequence, probs, classes: list[str],
                      thresholds: Sequence[float] | None = None) -> None:
    """One row per image (samples: objects with .path and .label, and .group), for confusion matrices, curves,
    galleries; a group column when any sample has a group (the report's intervals resample them). With
    thresholds (a multi-label run) label and predicted are '|'-joined label sets."""
    grouped = thresholds is None and any(getattr(s, "group", None) is not None for s in samples)
    with atomic_path(path) as tmp, open(tmp, "w", newline="", **ENCODING) as f:
        w = csv.writer(f)
        w.writerow(spreadsheet_row(["path", "label", "predicted", "confidence"] + [f"p:{c}" for c in classes]
                                   + (["group"] if grouped else [])))
        if thresholds is not None:
            from ..evaluate.multilabel import prediction_rows  # numpy only; this module stays torch-free

            w.writerows(spreadsheet_row(r) for r in prediction_rows(samples, probs, classes, thresholds))
            return
        for s, p in zip(samples, probs):
            label = classes[s.label] if s.label >= 0 else ""
            w.writerow(spreadsheet_row([str(s.path), label, classes[int(p.argmax())], f"{p.max():.6f}"]
                                       + [f"{x:.6f}" for x in p] + ([s.group or ""] if grouped else [])))


def task_thresholds(config: dict, classes: list[str]) -> list[float] | None:
    """A multi-label run's per-label thresholds from config.yaml's task section (None for a single-label run)."""
    task = config.get("task") or {}
    if task.get("kind") != "multilabel":
        return None
    values = task.get("thresholds") or {}
    return [float(values.get(c, 0.5)) for c in classes]


def write_marker(folder: Path, status: str, inputs: dict | None = None, files: Sequence[str] = ()) -> None:
    write_json(folder / MARKER, {"format": FORMAT, "status": status, "inputs": inputs or {},
                                 "files": sorted(set(files))})


def record_file(folder: Path, name: str) -> None:
    """Add a file written into a finished run (evaluate --save-as) to what a later run there may delete."""
    marker = read_marker(folder)
    if marker and marker.get("status") == "complete":
        write_marker(folder, "complete", marker.get("inputs"), [*marker.get("files", []), name])


def written_files(folder: Path) -> list[str]:
    """What tlearn wrote in the run folder (relative paths), as its run.json lists them."""
    marker = read_marker(folder)
    if marker is None or not isinstance(marker.get("files"), list):
        return []
    return [f for f in marker["files"] if isinstance(f, str) and ".." not in Path(f).parts
            and not Path(f).is_absolute()]


# ---- reading ---------------------------------------------------------------------------------------------------

def read_text(path: Path) -> str:
    return path.read_text(**ENCODING)


def read_marker(folder: Path) -> dict | None:
    """run.json's content, None when there is none; a damaged one reads as an interrupted run."""
    path = folder / MARKER
    if not path.is_file():
        return None
    try:
        marker = json.loads(read_text(path))
    except (OSError, json.JSONDecodeError):
        return {"status": "damaged"}
    return marker if isinstance(marker, dict) else {"status": "damaged"}


def is_run(folder: str | Path) -> bool:
    """A tlearn run directory, finished or not (a folder a new run may replace)."""
    folder = Path(folder)
    return folder.is_dir() and ((folder / MARKER).is_file() or all((folder / n).is_file() for n in REQUIRED))


def is_complete(folder: str | Path) -> bool:
    marker = read_marker(Path(folder))
    return marker is not None and marker.get("status") == "complete"


def require_complete(folder: str | Path) -> Path:
    """folder, or a TlearnError that says why it is not a finished run and what to do."""
    folder = Path(folder)
    if not folder.is_dir():
        raise TlearnError(f"{folder} is not a tlearn run directory: no such folder.")
    marker = read_marker(folder)
    if marker is None and all((folder / n).is_file() for n in REQUIRED):
        raise TlearnError(f"{folder / MARKER} is missing: {folder} was written by an older tlearn, whose runs this "
                          f"version does not read. Train it again (`tlearn fit ... --out {folder}`).")
    if marker is not None and marker.get("status") != "complete":
        raise TlearnError(
            f"{folder} is an incomplete tlearn run (status {marker.get('status')!r}): its training was "
            f"interrupted or it is still being written, so its files may not belong together. Train it again "
            f"(`tlearn fit ... --out {folder}`, with --resume to continue from its checkpoints).")
    for name in REQUIRED:
        if not (folder / name).is_file():
            raise TlearnError(f"{folder} is not a tlearn run directory: {name} is missing.")
    return folder


def read_config(folder: Path) -> dict:
    try:
        config = yaml.safe_load(read_text(folder / CONFIG)) or {}
    except yaml.YAMLError as exc:
        raise TlearnError(f"{folder / CONFIG} is damaged ({exc}); train the run again.") from None
    if not isinstance(config, dict):
        raise TlearnError(f"{folder / CONFIG} is not a mapping of sections (it holds a {type(config).__name__}); the "
                          "file was edited or damaged. Train the run again.")
    return config


def read_classes(folder: Path) -> list[str]:
    try:
        classes = json.loads(read_text(folder / CLASSES))
    except json.JSONDecodeError as exc:
        raise TlearnError(f"{folder / CLASSES} is damaged ({exc}); train the run again.") from None
    if not isinstance(classes, list) or not classes or not all(isinstance(c, str) and c for c in classes) \
            or len(set(classes)) != len(classes):
        raise TlearnError(f"{folder / CLASSES} is not a list of distinct class names; the file was edited or damaged. "
                          "Train the run again.")
    return classes


def read_metrics(folder: Path) -> dict:
    path = folder / METRICS
    return json.loads(read_text(path)) if path.is_file() else {}


# ---- preparing OUT ---------------------------------------------------------------------------------------------

def check_out(out: Path, overwrite: bool, resume: bool = False) -> None:
    """Refuse an OUT that is a file, a finished run (unless overwrite or resume), or a non-empty folder that is not
    a tlearn run (unless overwrite). An interrupted run's folder is reused: its run starts again or resumes."""
    if out.exists() and not out.is_dir():
        raise TlearnError(f"--out {out} exists and is not a folder; choose another run directory.")
    if not overwrite and not resume and is_complete(out):
        raise TlearnError(
            f"--out {out} holds a finished run (its model and metrics would be replaced); choose a new --out, or add "
            "--overwrite (Python API: overwrite=True) to replace it.")
    if out.is_dir() and not overwrite and not is_run(out) and any(out.iterdir()):
        raise TlearnError(
            f"--out {out} is a folder with files that is not a tlearn run; choose a new or empty folder, or add "
            "--overwrite to write the run into it (its other files are kept).")
