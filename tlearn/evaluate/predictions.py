"""Read RUN/predictions/<split>.csv back (path, label, predicted, confidence, p:<class>...) for reports."""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import TlearnError
from ..files import spreadsheet_plain


@dataclass
class PredictionTable:
    """One split's saved predictions; labels are indices into classes, -1 where the image had no label."""

    split: str
    paths: list[str]
    labels: np.ndarray  # (n,) int64
    probs: np.ndarray  # (n, K) float64
    classes: list[str]
    groups: list[str | None] | None = None  # each image's group (patient), when the file has a group column

    @property
    def labelled(self) -> "PredictionTable":
        keep = self.labels >= 0
        groups = None if self.groups is None else [g for g, k in zip(self.groups, keep) if k]
        return PredictionTable(self.split, [p for p, k in zip(self.paths, keep) if k], self.labels[keep],
                               self.probs[keep], self.classes, groups)

    @property
    def predicted(self) -> np.ndarray:
        return self.probs.argmax(1) if len(self.probs) else np.zeros(0, dtype=np.int64)

    @property
    def confidence(self) -> np.ndarray:
        return self.probs.max(1) if len(self.probs) else np.zeros(0)

    def __len__(self) -> int:
        return len(self.paths)


def read_predictions(path: str | Path, classes: list[str] | None = None) -> PredictionTable:
    """Parse a predictions CSV; the class order comes from its p:<class> columns (checked against classes)."""
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8", errors="surrogateescape") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            header = None if header is None else [spreadsheet_plain(c) for c in header]
            rows = [[spreadsheet_plain(c) for c in row] for row in reader]  # undo the quote tlearn put before =, -...
    except OSError as exc:
        raise TlearnError(f"cannot read predictions file {path}: {exc.strerror or exc}") from exc
    prob_cols = [i for i, name in enumerate(header or []) if name.startswith("p:")]
    if not header or header[:2] != ["path", "label"] or not prob_cols:
        raise TlearnError(f"{path} is not a tlearn predictions file: expected columns path,label,...,p:<class>; "
                          "rewrite it with `tlearn evaluate RUN DIR --save-as NAME`.")
    file_classes = [header[i][2:] for i in prob_cols]
    if classes is not None and file_classes != list(classes):
        raise TlearnError(f"{path} has classes {file_classes}, but the run has {list(classes)}; "
                          "it was written by another run: delete it or re-run `tlearn evaluate --save-as`.")
    index = {name: k for k, name in enumerate(file_classes)}
    group_col = header.index("group") if "group" in header else None
    paths, labels, probs, groups = [], [], [], []
    for line, row in enumerate(rows, start=2):
        if not row:
            continue
        try:
            probs.append([float(row[i]) for i in prob_cols])
        except (ValueError, IndexError):
            raise TlearnError(f"{path} line {line}: probabilities are not numbers; the file is damaged, "
                              "re-run `tlearn evaluate --save-as`.") from None
        paths.append(row[0])
        labels.append(index.get(row[1], -1))
        if group_col is not None:
            groups.append(row[group_col] if group_col < len(row) and row[group_col] else None)
    return PredictionTable(
        split=path.stem, paths=paths, labels=np.array(labels, dtype=np.int64),
        probs=np.array(probs, dtype=np.float64).reshape(len(probs), len(file_classes)), classes=file_classes,
        groups=groups if group_col is not None else None,
    )
