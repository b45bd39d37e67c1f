"""MLflowCallback: parameters, per-epoch metrics, final metrics with their intervals and the run's files, in MLflow.

Where: `tracking_uri`, else MLflow's own MLFLOW_TRACKING_URI, else a local store beside the runs: `mlflow.db`
(SQLite) and `mlruns/` (artifacts) in `root`. MLflow 3 keeps its plain-folder store in maintenance mode and
refuses it unless MLFLOW_ALLOW_FILE_STORE=true, so the local default is the SQLite file it recommends; a `file:`
URI still works where that variable is set. See the runs with `mlflow ui --backend-store-uri sqlite:///ROOT/mlflow.db`
(the UI needs the full `mlflow` package).
"""
from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path

from ..errors import TlearnError
from .base import epoch_metrics, flatten_config, run_metrics

ARTIFACTS = ("report.html", "config.yaml", "metrics.json", "history.csv", "model.safetensors")
LOCAL_DB = "mlflow.db"
LOCAL_ARTIFACTS = "mlruns"
INSTALL_HINT = "pip install 'tlearn[track]'"


def import_mlflow():
    """The mlflow module, or an error that says how to install it."""
    try:
        import mlflow  # noqa: F401
        from mlflow.tracking import MlflowClient  # noqa: F401
    except ImportError as exc:
        raise TlearnError(f"--track mlflow needs MLflow, which is not installed ({exc}); {INSTALL_HINT}") from exc
    return mlflow


def local_tracking_uri(root: str | Path) -> str:
    """The SQLite store of the local default: ROOT/mlflow.db."""
    return f"sqlite:///{(Path(root).expanduser().resolve() / LOCAL_DB).as_posix()}"


class MLflowCallback:
    """Logs one tlearn run as one MLflow run: the flattened config as parameters, each history.csv row as metrics
    at step=epoch, metrics.json's numbers at the last epoch's step (95% intervals as `<split>_<metric>_ci_low` and
    `_ci_high`) and the run's files (report.html, config.yaml, metrics.json, history.csv, model.safetensors) as
    artifacts."""

    def __init__(self, tracking_uri: str | None = None, experiment: str = "tlearn", *, root: str | Path | None = None,
                 run_name: str | None = None, artifacts: Sequence[str] = ARTIFACTS):
        import_mlflow()
        self.root = Path(root if root is not None else Path.cwd()).expanduser().resolve()
        self.local = not (tracking_uri or os.environ.get("MLFLOW_TRACKING_URI"))
        self.tracking_uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or local_tracking_uri(self.root)
        self.experiment = experiment
        self.run_name = run_name
        self.artifacts = tuple(artifacts)
        self.run_id: str | None = None
        self.last_epoch = 0
        self._last_time = 0
        self._client = None

    @property
    def client(self):
        if self._client is None:
            from mlflow.tracking import MlflowClient

            if self.local:
                self.root.mkdir(parents=True, exist_ok=True)
            self._client = MlflowClient(tracking_uri=self.tracking_uri)
        return self._client

    def _experiment_id(self) -> str:
        found = self.client.get_experiment_by_name(self.experiment)
        if found is not None:
            return found.experiment_id
        location = (self.root / LOCAL_ARTIFACTS).as_uri() if self.local else None  # else the server decides
        return self.client.create_experiment(self.experiment, artifact_location=location)

    def on_run_start(self, config: dict) -> None:
        """Open the MLflow run and log the config as parameters."""
        from mlflow.entities import Param
        from mlflow.utils.validation import MAX_PARAM_VAL_LENGTH, MAX_PARAMS_TAGS_PER_BATCH

        from .._version import __version__

        name = self.run_name or (Path(str(config["out"])).name if config.get("out") else None)
        run = self.client.create_run(self._experiment_id(), run_name=name, tags={"tlearn.version": __version__})
        self.run_id = run.info.run_id
        params = [Param(k, v[:MAX_PARAM_VAL_LENGTH]) for k, v in flatten_config(config).items()]
        for start in range(0, len(params), MAX_PARAMS_TAGS_PER_BATCH):
            self.client.log_batch(self.run_id, params=params[start:start + MAX_PARAMS_TAGS_PER_BATCH])

    def on_epoch_end(self, row: dict) -> None:
        """Log the row's numbers with step=epoch."""
        epoch, values = epoch_metrics(row)
        step = epoch if epoch is not None else self.last_epoch + 1
        self.last_epoch = max(self.last_epoch, step)  # a resumed run's earlier epochs may come after its new ones
        self._log_metrics(values, step=step)

    def on_run_end(self, run_dir: Path, metrics: dict) -> None:
        """Log the final metrics and the run's files, then close the MLflow run as finished. The final metrics go
        at the last epoch's step, logged after its row: a name both have (val_accuracy, val_loss) then shows the
        evaluated model's figure as the run's value, its curve still the epochs'."""
        run_dir = Path(run_dir)
        self._log_metrics(run_metrics(metrics), step=self.last_epoch)
        self.client.set_tag(self._require_run(), "tlearn.run_dir", str(run_dir.resolve()))
        for name in self.artifacts:
            path = run_dir / name
            if path.is_file():
                self.client.log_artifact(self.run_id, str(path))
        self.client.set_terminated(self.run_id, "FINISHED")

    def on_run_failed(self, error: BaseException) -> None:
        """Close the MLflow run as failed (a run that stops on an error)."""
        if self.run_id is not None:
            self.client.set_tag(self.run_id, "tlearn.error", f"{type(error).__name__}: {error}"[:5000])
            self.client.set_terminated(self.run_id, "FAILED")

    def _require_run(self) -> str:
        if self.run_id is None:
            raise TlearnError("MLflowCallback: on_run_start was not called before the run's metrics.")
        return self.run_id

    def _log_metrics(self, values: dict[str, float], step: int) -> None:
        from mlflow.entities import Metric
        from mlflow.utils.validation import MAX_METRICS_PER_BATCH

        run_id = self._require_run()
        now = max(int(time.time() * 1000), self._last_time + 1)  # later rows sort after earlier ones
        self._last_time = now
        rows = [Metric(k, v, now, step) for k, v in values.items()]
        for start in range(0, len(rows), MAX_METRICS_PER_BATCH):
            self.client.log_batch(run_id, metrics=rows[start:start + MAX_METRICS_PER_BATCH])
