"""Validation curves of a run and how fast they climb: epochs and seconds to reach an accuracy."""
from __future__ import annotations

import csv
from dataclasses import asdict, dataclass
from pathlib import Path

PLATEAU_TOLERANCE = 0.01  # a curve has plateaued once it is within 1 accuracy point of its own best


@dataclass(frozen=True)
class CurvePoint:
    epoch: float
    seconds: float  # wall-clock seconds since the run started training, at the end of this epoch
    val_accuracy: float

    def to_dict(self) -> dict:
        return asdict(self)


def _number(value) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def read_curve(history_csv: str | Path, total_seconds: float | None = None) -> list[CurvePoint]:
    """The rows of RUN/history.csv that carry a validation accuracy, on a cumulative time axis.

    history.csv's `seconds` is each epoch's own duration; the curve sums them. With total_seconds (the run's
    train_seconds), the time spent outside epochs (loading the backbone, decoding images, lp-ft's probe) is
    counted before the first epoch, so every curve ends at its run's training time and starts from zero.
    """
    path = Path(history_csv)
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    elapsed, cumulative = 0.0, []
    for row in rows:
        elapsed += max(_number(row.get("seconds")) or 0.0, 0.0)
        cumulative.append(elapsed)
    offset = max((total_seconds or 0.0) - elapsed, 0.0)
    curve = []
    for i, (row, sec) in enumerate(zip(rows, cumulative)):
        acc = _number(row.get("val_accuracy"))
        if acc is None:
            continue
        epoch = _number(row.get("epoch"))
        curve.append(CurvePoint(epoch if epoch is not None else float(i + 1), offset + sec, acc))
    return curve


def first_reaching(curve: list[CurvePoint], accuracy: float) -> CurvePoint | None:
    """The first point whose validation accuracy is at least `accuracy` (None if the curve never gets there)."""
    return next((p for p in curve if p.val_accuracy >= accuracy - 1e-12), None)


def best_accuracy(curve: list[CurvePoint]) -> float | None:
    return max((p.val_accuracy for p in curve), default=None)


def plateau_point(curve: list[CurvePoint], tolerance: float = PLATEAU_TOLERANCE) -> CurvePoint | None:
    """The first point within `tolerance` of the curve's own best accuracy."""
    best = best_accuracy(curve)
    return None if best is None else first_reaching(curve, best - tolerance)


def time_to(curve: list[CurvePoint], accuracy: float) -> dict:
    """{"epochs": e, "seconds": s} to first reach `accuracy`, or None values when never reached."""
    p = first_reaching(curve, accuracy)
    return {"epochs": p.epoch if p else None, "seconds": p.seconds if p else None}
