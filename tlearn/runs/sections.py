"""config.yaml read back as typed sections: what every reader of a run (Run, run-as-backbone, reports) needs,
with each default declared once (the fit options' defaults are tlearn.config's).

A run whose config.yaml lacks a section every run writes (backbone, data) is refused with the file named.
Torch-free, so reports read runs without the training stack.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from pathlib import Path

from ..config import RunOptions
from ..constants import MAX_FEATURE_DIM
from ..data.multilabel import TASK_MULTILABEL, TASK_SINGLE
from ..errors import TlearnError
from . import layout

_FIT_DEFAULTS = {f.name: f.default for f in fields(RunOptions) if not callable(f.default)}


def _refuse(folder: Path, what: str) -> TlearnError:
    return TlearnError(f"{folder / layout.CONFIG} has no usable {what} (an older or edited run format); train the "
                       "run again with this tlearn.")


@dataclass(frozen=True)
class BackboneSection:
    """config.yaml's backbone: what the model was built from (data_config as recorded; DataConfig.from_dict)."""

    name: str
    architecture: str
    feature_dim: int
    data_config: dict
    weights: str
    weights_sha256: str | None = None
    weights_origin: str | None = None

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def _check_backbone(folder: Path, backbone: BackboneSection) -> None:
    """An architecture name and a plausible feature_dim, checked before anything is built from them."""
    if not isinstance(backbone.architecture, str) or not backbone.architecture:
        raise _refuse(folder, f"backbone architecture ({backbone.architecture!r} is not a name)")
    dim = backbone.feature_dim
    if isinstance(dim, bool) or not isinstance(dim, int) or not 1 <= dim <= MAX_FEATURE_DIM:
        raise _refuse(folder, f"backbone feature_dim ({dim!r}; a whole number from 1 to {MAX_FEATURE_DIM})")


@dataclass(frozen=True)
class DataSection:
    """config.yaml's data: where the images came from and how they were split."""

    root: str
    val_source: str
    classes: list[str]
    counts: dict = field(default_factory=dict)
    group_by: str | None = None
    groups: dict | None = None


@dataclass(frozen=True)
class FitSection:
    """config.yaml's fit: the options the run was trained with; the ones readers use are typed."""

    values: dict
    data: str | None = None
    seed: int = _FIT_DEFAULTS["seed"]
    val_fraction: float = _FIT_DEFAULTS["val_fraction"]
    group_by: str | None = _FIT_DEFAULTS["group_by"]
    batch_size: int = _FIT_DEFAULTS["batch_size"]
    device: str = _FIT_DEFAULTS["device"]
    cache_dir: str | None = _FIT_DEFAULTS["cache_dir"]
    empty_label: str | None = None

    @classmethod
    def from_dict(cls, d: dict) -> "FitSection":
        typed = {f.name for f in fields(cls)} - {"values"}
        return cls(values=dict(d), **{k: v for k, v in d.items() if k in typed})

    def get(self, key: str):
        """Any other recorded option (None when the job does not have it)."""
        return self.values.get(key)


@dataclass(frozen=True)
class StrategySection:
    """config.yaml's strategy: its name and what it recorded (phases, options, choices)."""

    name: str
    details: dict


@dataclass(frozen=True)
class TaskSection:
    """config.yaml's task: absent for single-label runs; multi-label runs record their label thresholds."""

    kind: str = "single-label"
    thresholds: dict = field(default_factory=dict)
    threshold_source: str | None = None

    @property
    def multilabel(self) -> bool:
        return self.kind == TASK_MULTILABEL


def _task(folder: Path, recorded) -> TaskSection:
    """config.yaml's task section: a known kind, and thresholds that are probabilities of known labels."""
    if recorded is None:
        return TaskSection()
    try:
        task = TaskSection(**recorded)
    except TypeError as exc:
        raise _refuse(folder, f"task section ({exc!r})") from None
    if task.kind not in (TASK_SINGLE, TASK_MULTILABEL):
        raise _refuse(folder, f"task kind ({task.kind!r}; {TASK_SINGLE} or {TASK_MULTILABEL})")
    thresholds = task.thresholds
    if not isinstance(thresholds, dict) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and 0 <= v <= 1
            for v in thresholds.values()):
        raise _refuse(folder, "task thresholds (a probability from 0 to 1 for each label)")
    return task


@dataclass(frozen=True)
class RunSections:
    """A run's config.yaml, section by section; `config` keeps the whole mapping (job-specific sections)."""

    path: Path
    config: dict
    fit: FitSection
    strategy: StrategySection
    backbone: BackboneSection
    data: DataSection
    task: TaskSection
    precision: str
    device: str
    lineage: list[dict] = field(default_factory=list)  # extensions: the steps that made the run (tlearn extend)

    @classmethod
    def from_config(cls, folder: Path, config: dict) -> "RunSections":
        try:
            backbone = BackboneSection(**config["backbone"])
        except (KeyError, TypeError) as exc:
            raise _refuse(folder, f"backbone section ({exc!r})") from None
        _check_backbone(folder, backbone)
        try:
            data = DataSection(**config["data"])
        except (KeyError, TypeError) as exc:
            raise _refuse(folder, f"data section ({exc!r})") from None
        for name in ("fit", "strategy", "task"):
            if config.get(name) is not None and not isinstance(config[name], dict):
                raise _refuse(folder, f"{name} section (a {type(config[name]).__name__}, not a mapping)")
        strategy = dict(config.get("strategy") or {})
        return cls(path=folder, config=config, fit=FitSection.from_dict(config.get("fit") or {}),
                   strategy=StrategySection(str(strategy.pop("name", "")), strategy), backbone=backbone, data=data,
                   task=_task(folder, config.get("task")),
                   precision=str(config.get("precision") or _FIT_DEFAULTS["precision"]),
                   device=str(config.get("device") or _FIT_DEFAULTS["device"]),
                   lineage=list(config.get("lineage") or []))


def read_sections(folder: str | Path) -> RunSections:
    """config.yaml of the run FOLDER as typed sections."""
    folder = Path(folder)
    return RunSections.from_config(folder, layout.read_config(folder))
