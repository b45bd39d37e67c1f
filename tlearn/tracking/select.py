"""`--track mlflow,tensorboard` -> the callbacks that log a run there."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from ..errors import TlearnError
from .base import Callback

TENSORBOARD_DIR = "tensorboard"  # RUN/tensorboard, where the training loop writes its scalars


def _mlflow(run_out: Path, tracking_uri: str | None) -> Callback:
    from .mlflow_callback import MLflowCallback

    return MLflowCallback(tracking_uri, root=run_out.parent, run_name=run_out.name)


def _tensorboard(run_out: Path, tracking_uri: str | None) -> Callback:
    from .tensorboard_callback import TensorBoardCallback

    return TensorBoardCallback(run_out / TENSORBOARD_DIR)


TRACKERS: dict[str, Callable[[Path, str | None], Callback]] = {"mlflow": _mlflow, "tensorboard": _tensorboard}


def parse_track(track: str | Sequence[str] | None) -> list[str]:
    """'mlflow,tensorboard' or ['mlflow', 'tensorboard'] -> known tracker names, in order, without repeats."""
    if not track:
        return []
    items = track.split(",") if isinstance(track, str) else [p for t in track for p in str(t).split(",")]
    names = list(dict.fromkeys(t.strip().lower() for t in items if t.strip()))
    unknown = [n for n in names if n not in TRACKERS]
    if unknown:
        raise TlearnError(f"--track: unknown tracker(s) {unknown}; choose from {', '.join(TRACKERS)} "
                          "(comma-separated, e.g. --track mlflow,tensorboard).")
    return names


def callbacks_for(track: str | Sequence[str] | None, run_out: str | Path,
                  tracking_uri: str | None = None) -> list[Callback]:
    """The callbacks for `--track` (None or empty: none) of the run written to run_out; a clear error, before
    training, when a tracker's package is not installed. MLflow's local store goes beside the run
    (run_out/../mlflow.db and run_out/../mlruns) unless tracking_uri (or MLFLOW_TRACKING_URI) names another,
    TensorBoard's events into run_out/tensorboard."""
    out = Path(run_out).expanduser()
    return [TRACKERS[name](out, tracking_uri) for name in parse_track(track)]
