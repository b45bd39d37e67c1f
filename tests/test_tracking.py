"""Tracking callbacks driven as a run would drive them, on a fake run directory; the MLflow run is read back with
MLflow's own client and the TensorBoard events with TensorBoard's reader."""
from __future__ import annotations

import builtins
import csv
import json
import logging
from pathlib import Path

import pytest

from tlearn.errors import TlearnError
from tlearn.tracking import Callback, Tracking, callbacks_for, epoch_metrics, flatten_config, parse_track, run_metrics

CONFIG = {"out": "runs/probe", "strategy": "linear-probe", "seed": 0, "epochs": 3,
          "backbone": {"name": "resnet18", "weights_sha256": "ab" * 32, "data_config": {"input_size": 224}},
          "fractions": [0.1, 1.0], "cache_dir": None}
HISTORY = [{"epoch": 1, "lr": 0.01, "train_loss": 0.9, "val_loss": 0.8, "val_accuracy": 0.6, "seconds": 1.5},
           {"epoch": 2, "lr": 0.005, "train_loss": 0.5, "val_loss": 0.6, "val_accuracy": 0.75, "seconds": 3.0},
           {"epoch": 3, "lr": "", "train_loss": 0.3, "val_loss": 0.55, "val_accuracy": 0.8, "seconds": 4.5}]
METRICS = {"val": {"accuracy": 0.82, "macro_f1": 0.78, "loss": 0.55, "n": 40, "ci_unit": "image",
                   "ci95": {"accuracy": [0.65, 0.9], "balanced_accuracy": [0.6, 0.88]}},
           "test": {"accuracy": 0.77, "n": 40, "ci95": {"accuracy": [0.62, 0.88]}},
           "train_seconds": 4.5, "skipped": [{"path": "x.jpg", "reason": "unreadable"}]}
ARTIFACTS = ("report.html", "config.yaml", "metrics.json", "history.csv", "model.safetensors")


def fake_run(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "report.html").write_text("<html>report</html>")
    (folder / "config.yaml").write_text("strategy: linear-probe\n")
    (folder / "metrics.json").write_text(json.dumps(METRICS))
    with open(folder / "history.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(HISTORY[0]))
        w.writeheader()
        w.writerows(HISTORY)
    (folder / "model.safetensors").write_bytes(b"\0" * 64)
    return folder


def drive(callbacks, run_dir: Path) -> None:
    tracking = Tracking(callbacks)
    tracking.on_run_start(CONFIG)
    for row in HISTORY:
        tracking.on_epoch_end(row)
    tracking.on_run_end(run_dir, METRICS)


def test_flattening_of_config_rows_and_metrics():
    flat = flatten_config(CONFIG)
    assert flat["backbone.data_config.input_size"] == "224" and flat["fractions"] == "[0.1, 1.0]"
    assert flat["cache_dir"] == "" and "backbone" not in flat
    assert epoch_metrics(HISTORY[2]) == (3, {"train_loss": 0.3, "val_loss": 0.55, "val_accuracy": 0.8,
                                             "seconds": 4.5})  # the empty lr cell is left out
    assert epoch_metrics({"epoch": "2", "lr": "nan", "val_accuracy": "0.5"}) == (2, {"val_accuracy": 0.5})
    m = run_metrics(METRICS)
    assert m["val_accuracy"] == 0.82 and m["val_n"] == 40 and m["train_seconds"] == 4.5
    assert m["val_accuracy_ci_low"] == 0.65 and m["val_accuracy_ci_high"] == 0.9
    assert m["val_balanced_accuracy_ci_low"] == 0.6 and m["test_accuracy_ci_high"] == 0.88
    assert not any(k.startswith("skipped") or "ci_unit" in k for k in m)


def test_parse_track_and_unknown_trackers(tmp_path):
    assert parse_track(None) == [] and parse_track("") == []
    assert parse_track("mlflow, TensorBoard,mlflow") == ["mlflow", "tensorboard"]
    assert parse_track(["mlflow,tensorboard"]) == ["mlflow", "tensorboard"]
    assert callbacks_for(None, tmp_path / "run") == []
    with pytest.raises(TlearnError, match=r"unknown tracker\(s\) \['wandb'\].*mlflow, tensorboard"):
        parse_track("mlflow,wandb")


def test_missing_mlflow_says_how_to_install(tmp_path, monkeypatch):
    real_import = builtins.__import__

    def no_mlflow(name, *args, **kwargs):
        if name == "mlflow" or name.startswith("mlflow."):
            raise ImportError("No module named 'mlflow'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_mlflow)
    with pytest.raises(TlearnError, match=r"pip install 'tlearn\[track\]'"):
        callbacks_for("mlflow", tmp_path / "run")


def test_mlflow_callback_logs_params_metric_history_final_metrics_and_artifacts(tmp_path, monkeypatch):
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    from tlearn.tracking.mlflow_callback import MLflowCallback, local_tracking_uri

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)  # nothing may land in the working folder
    run_dir = fake_run(tmp_path / "runs" / "probe")
    [cb] = callbacks_for("mlflow", run_dir)
    assert isinstance(cb, MLflowCallback) and isinstance(cb, Callback)
    drive([cb], run_dir)

    uri = local_tracking_uri(tmp_path / "runs")
    assert (tmp_path / "runs" / "mlflow.db").is_file()  # the local store sits beside the run
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("tlearn")
    [run] = client.search_runs([experiment.experiment_id])
    assert run.info.run_id == cb.run_id and run.info.status == "FINISHED" and run.info.run_name == "probe"
    params = run.data.params
    assert params["strategy"] == "linear-probe" and params["backbone.name"] == "resnet18"
    assert params["backbone.data_config.input_size"] == "224"
    history = sorted(client.get_metric_history(run.info.run_id, "val_accuracy"), key=lambda m: (m.step, m.timestamp))
    assert [(m.step, m.value) for m in history] == [(1, 0.6), (2, 0.75), (3, 0.8), (3, 0.82)]  # epochs, then final
    assert run.data.metrics["val_accuracy"] == 0.82  # the run's value: the evaluated model's
    assert [m.step for m in client.get_metric_history(run.info.run_id, "lr")] == [1, 2]  # epoch 3 had no lr
    final = run.data.metrics
    assert final["test_accuracy"] == 0.77 and final["val_accuracy_ci_low"] == 0.65
    assert final["val_accuracy_ci_high"] == 0.9 and final["train_seconds"] == 4.5
    assert run.data.tags["tlearn.run_dir"] == str(run_dir.resolve())
    assert sorted(a.path for a in client.list_artifacts(run.info.run_id)) == sorted(ARTIFACTS)
    local = Path(client.download_artifacts(run.info.run_id, "metrics.json", str(tmp_path / "dl")))
    assert json.loads(local.read_text()) == METRICS
    assert (tmp_path / "runs" / "mlruns").is_dir() and not (tmp_path / "mlruns").exists()

    second = fake_run(tmp_path / "runs" / "probe2")  # a second run joins the same experiment
    [cb2] = callbacks_for("mlflow", second)
    drive([cb2], second)
    assert len(client.search_runs([experiment.experiment_id])) == 2


def test_a_tracker_that_fails_after_the_start_is_dropped_not_fatal(tmp_path, caplog):
    calls = []

    class Flaky:
        def on_run_start(self, config):
            calls.append("start")

        def on_epoch_end(self, row):
            raise ConnectionError("server went away")

        def on_run_end(self, run_dir, metrics):
            calls.append("end")

    class Steady:
        def on_run_start(self, config):
            calls.append("steady start")

        def on_epoch_end(self, row):
            calls.append(f"steady {row['epoch']}")

        def on_run_end(self, run_dir, metrics):
            calls.append("steady end")

    with caplog.at_level(logging.WARNING, logger="tlearn"):
        tracking = Tracking([Flaky(), Steady()])
        tracking.on_run_start(CONFIG)
        for row in HISTORY + HISTORY:  # the pipeline replays the history the loop already sent: sent once
            tracking.on_epoch_end(row)
        tracking.on_run_end(tmp_path, METRICS)
    assert calls == ["start", "steady start", "steady 1", "steady 2", "steady 3", "steady end"]
    assert "Flaky.on_epoch_end failed (ConnectionError: server went away)" in caplog.text

    class Broken(Steady):
        def on_run_start(self, config):
            raise ValueError("bad tracking URI")

    with pytest.raises(ValueError, match="bad tracking URI"):  # before training: the user fixes it first
        Tracking([Broken()]).on_run_start(CONFIG)


def test_mlflow_run_that_fails_is_closed_as_failed(tmp_path, monkeypatch):
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    [cb] = callbacks_for("mlflow", tmp_path / "runs" / "broken")
    tracking = Tracking([cb])
    tracking.on_run_start(CONFIG)
    tracking.on_epoch_end(HISTORY[0])
    tracking.on_run_failed(RuntimeError("out of memory"))
    run = MlflowClient(tracking_uri=cb.tracking_uri).get_run(cb.run_id)
    assert run.info.status == "FAILED" and run.data.tags["tlearn.error"] == "RuntimeError: out of memory"


def test_tensorboard_callback_writes_the_loops_scalars(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_dir = fake_run(tmp_path / "runs" / "probe")
    [cb] = callbacks_for("tensorboard", run_dir)
    drive([cb], run_dir)
    events = EventAccumulator(str(run_dir / "tensorboard"))
    events.Reload()
    tags = events.Tags()["scalars"]
    assert {"lr", "train_loss", "val_loss", "val_accuracy", "final/val_accuracy_ci_low"} <= set(tags)
    assert [(e.step, round(e.value, 4)) for e in events.Scalars("val_accuracy")] == [(1, 0.6), (2, 0.75), (3, 0.8)]
    assert [e.step for e in events.Scalars("final/test_accuracy")] == [3]
