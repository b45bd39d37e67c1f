"""What the data layer hands on: samples, skipped files and the train/val/test splits (no file reading here)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Sample:
    path: Path
    label: int  # index into DataSplits.classes; -1 when unlabeled
    group: str | None = None  # patient / subject id: a group never spans two splits


@dataclass(frozen=True)
class SkippedFile:
    path: str
    reason: str

    def to_dict(self) -> dict:
        return {"path": self.path, "reason": self.reason}


@dataclass
class DataSplits:
    root: str
    classes: list[str]
    train: list[Sample]
    val: list[Sample]
    test: list[Sample]
    val_source: str
    skipped: list[SkippedFile] = field(default_factory=list)
    group_by: str | None = None  # the --group-by regex, when groups came from file names
    unmatched: int = 0  # images the --group-by regex found no group in

    @property
    def has_groups(self) -> bool:
        return any(s.group is not None for name in SPLITS for s in self.split(name))

    def split(self, name: str) -> list[Sample]:
        return {"train": self.train, "val": self.val, "test": self.test}[name]

    def counts(self) -> dict[str, int]:
        return {name: len(self.split(name)) for name in SPLITS}
