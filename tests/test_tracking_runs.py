"""Tracking wired into the run pipeline: `track="mlflow"` / `--track mlflow` logs a real run (read back with
MLflow's own client), callbacks hear each epoch live during fine-tuning and the end of every run, a failed run
is reported as failed, and a finished run is only replaced with overwrite."""
from __future__ import annotations

import json

import pytest

from tlearn.errors import TlearnError
from tlearn.runs import layout

TINY = dict(backbone="compact_cnn", weights="none", image_size=24, num_workers=0, progress=False)


class Recorder:
    """A user's callback: what it was told, in order."""

    def __init__(self):
        self.events: list[tuple] = []

    def on_run_start(self, config):
        self.events.append(("start", config["strategy"]))

    def on_epoch_end(self, row):
        self.events.append(("epoch", row["epoch"]))

    def on_run_end(self, run_dir, metrics):
        self.events.append(("end", run_dir.name, metrics["val"]["accuracy"]))


def test_fit_with_track_mlflow_logs_the_run_and_its_files(tiny_tree, tmp_path, monkeypatch):
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    from tlearn.fitting import fit
    from tlearn.tracking.mlflow_callback import local_tracking_uri

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    recorder = Recorder()
    run = fit(tiny_tree, tmp_path / "runs" / "probe", strategy="linear-probe", track="mlflow",
              callbacks=[recorder], **TINY)
    assert recorder.events[0] == ("start", "linear-probe")
    assert recorder.events[-1] == ("end", "probe", run.metrics["val"]["accuracy"])

    client = MlflowClient(tracking_uri=local_tracking_uri(tmp_path / "runs"))
    [logged] = client.search_runs([client.get_experiment_by_name("tlearn").experiment_id])
    assert logged.info.status == "FINISHED" and logged.info.run_name == "probe"
    assert logged.data.params["fit.strategy"] == "linear-probe" and logged.data.params["backbone.name"] == "compact_cnn"
    assert logged.data.metrics["val_accuracy"] == pytest.approx(run.metrics["val"]["accuracy"])
    assert "val_accuracy_ci_low" in logged.data.metrics
    artifacts = {a.path for a in client.list_artifacts(logged.info.run_id)}
    assert {"model.safetensors", "metrics.json", "config.yaml", "report.html"} <= artifacts
    saved = client.download_artifacts(logged.info.run_id, "metrics.json", str(tmp_path / "dl"))
    assert json.loads(open(saved).read())["val"] == run.metrics["val"]


def test_fine_tuning_tells_callbacks_each_epoch_as_it_trains(tiny_tree, tmp_path):
    from tlearn.fitting import fit

    recorder = Recorder()
    seen_during_training = []

    class Live(Recorder):
        def on_epoch_end(self, row):
            seen_during_training.append(layout.is_complete(tmp_path / "ft"))  # the run is not written yet
            super().on_epoch_end(row)

    live = Live()
    fit(tiny_tree, tmp_path / "ft", strategy="scratch", epochs=2, callbacks=[recorder, live], **TINY)
    assert [e for e in recorder.events if e[0] == "epoch"] == [("epoch", 1), ("epoch", 2)]
    assert seen_during_training == [False, False]
    assert recorder.events[-1][0] == "end"


def test_a_failed_run_is_reported_failed_to_callbacks(tiny_tree, tmp_path, monkeypatch):
    import tlearn.strategies.linear_probe_strategy as probe_strategy
    from tlearn.fitting import fit

    failed = []

    class Watcher(Recorder):
        def on_run_failed(self, error):
            failed.append(str(error))

    def broken(*args, **kwargs):
        raise RuntimeError("the probe broke")

    monkeypatch.setattr(probe_strategy.LinearProbeStrategy, "fit", broken)
    with pytest.raises(RuntimeError, match="the probe broke"):
        fit(tiny_tree, tmp_path / "run", strategy="linear-probe", callbacks=[Watcher()], **TINY)
    assert failed == ["the probe broke"]


def test_a_finished_run_is_replaced_only_with_overwrite(tiny_tree, tmp_path):
    from tlearn.fitting import fit

    out = tmp_path / "run"
    fit(tiny_tree, out, strategy="linear-probe", **TINY)
    model = (out / layout.MODEL).read_bytes()
    with pytest.raises(TlearnError, match="holds a finished run.*--overwrite"):
        fit(tiny_tree, out, strategy="linear-probe", seed=1, **TINY)
    assert (out / layout.MODEL).read_bytes() == model and layout.is_complete(out)
    fit(tiny_tree, out, strategy="linear-probe", seed=1, overwrite=True, **TINY)
    assert layout.is_complete(out)


def test_an_interrupted_run_is_reused_without_overwrite(tiny_tree, tmp_path):
    from tlearn.fitting import fit

    out = tmp_path / "run"
    fit(tiny_tree, out, strategy="linear-probe", **TINY)
    marker = layout.read_marker(out)
    layout.write_marker(out, "training", marker.get("inputs"), marker.get("files"))  # as if it had stopped
    fit(tiny_tree, out, strategy="linear-probe", **TINY)
    assert layout.is_complete(out)
