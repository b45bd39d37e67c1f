"""Everything a report reads from a run directory, loaded without building the model.

A report must be writable for any run directory a user has, so missing or damaged parts are recorded in
`problems` (and shown in the report) instead of stopping it.
"""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ..errors import TlearnError
from ..files import spreadsheet_plain
from ..evaluate.predictions import PredictionTable, read_predictions
from ..runs import layout as run_layout
from ..runs.sections import RunSections

# Splits in the order a reader expects them; any other saved split (evaluate --save-as NAME) follows.
SPLIT_ORDER = ("train", "val", "test")


def split_sort_key(name: str) -> tuple[int, str]:
    return (SPLIT_ORDER.index(name) if name in SPLIT_ORDER else len(SPLIT_ORDER), name)


@dataclass
class RunContents:
    path: Path
    sections: RunSections  # config.yaml, typed (its whole mapping: sections.config)
    classes: list[str]
    metrics: dict
    history: list[dict]
    predictions: dict[str, PredictionTable]  # split name -> labelled and unlabelled rows
    model_bytes: int | None
    config_text: str
    problems: list[str] = field(default_factory=list)

    @property
    def config(self) -> dict:
        """config.yaml as a mapping (the sections a job adds: rank, teacher, extend, lineage)."""
        return self.sections.config

    @property
    def name(self) -> str:
        return self.path.resolve().name

    @property
    def splits(self) -> list[str]:
        """Splits with predictions saved, in reading order."""
        return sorted(self.predictions, key=split_sort_key)

    def split_metrics(self, split: str) -> dict | None:
        block = self.metrics.get(split)
        return block if isinstance(block, dict) and "n" in block else None


def _read_history(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    out = []
    for row in rows:
        parsed = {}
        for key, value in row.items():
            if key is None:
                continue
            try:
                parsed[key] = float(value) if value not in ("", None) else None
            except ValueError:
                parsed[key] = spreadsheet_plain(value)
        out.append(parsed)
    return out


def load_run_contents(run_dir: str | Path) -> RunContents:
    """Read config.yaml, classes.json, metrics.json, history.csv and predictions/*.csv of RUN."""
    path = Path(run_dir)
    if not path.is_dir():
        raise TlearnError(f"{path} is not a folder; give a run directory written by `tlearn fit`.")
    if not (path / run_layout.CONFIG).is_file() or not (path / run_layout.CLASSES).is_file():
        raise TlearnError(f"{path} is not a tlearn run directory: {run_layout.CONFIG} or {run_layout.CLASSES} is "
                          "missing.")
    if not run_layout.is_complete(path):
        run_layout.require_complete(path)  # says why and what to do
    problems: list[str] = []
    config_text = run_layout.read_text(path / run_layout.CONFIG)
    try:
        config = yaml.safe_load(config_text) or {}
        classes = json.loads(run_layout.read_text(path / run_layout.CLASSES))
    except (yaml.YAMLError, json.JSONDecodeError) as exc:
        raise TlearnError(f"{path}: {run_layout.CONFIG} or {run_layout.CLASSES} is damaged ({exc}); re-run "
                          "`tlearn fit`.") from None
    sections = RunSections.from_config(path, config)
    metrics: dict = {}
    if (path / run_layout.METRICS).is_file():
        try:
            metrics = json.loads(run_layout.read_text(path / run_layout.METRICS))
        except json.JSONDecodeError as exc:
            problems.append(f"metrics.json is damaged ({exc}); metrics below are recomputed from predictions.")
    else:
        problems.append("metrics.json is missing; metrics below are recomputed from predictions.")
    predictions: dict[str, PredictionTable] = {}
    for csv_path in sorted((path / run_layout.PREDICTIONS).glob("*.csv")):
        try:
            predictions[csv_path.stem] = read_predictions(csv_path, classes)
        except TlearnError as exc:
            problems.append(str(exc))
    model = path / run_layout.MODEL
    return RunContents(
        path=path, sections=sections, classes=classes, metrics=metrics,
        history=_read_history(path / run_layout.HISTORY),
        predictions=predictions, model_bytes=model.stat().st_size if model.is_file() else None,
        config_text=config_text, problems=problems,
    )
