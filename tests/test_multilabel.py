"""Multi-label tasks: manifests, --empty-label, a sigmoid head (probe and fine-tuning), per-label metrics, and
the same probabilities through predict, the exported ONNX/TorchScript files, the runtime and the service."""
from __future__ import annotations

import csv
import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score, roc_auc_score

from export_helpers import Server, multipart
from multilabel_fixtures import COLOURS, write_multilabel_set
from tlearn.data.layout import load_splits
from tlearn.data.multilabel import MultiLabelSample, label_matrix
from tlearn.errors import DataError
from tlearn.evaluate.multilabel import choose_thresholds, multilabel_metrics
from tlearn.train.losses import Batch, BinaryCrossEntropy

FAST = dict(backbone="compact_cnn", weights="none", image_size=24, num_workers=0, progress=False,
            precision="fp32", empty_label="No Finding")


@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
    return write_multilabel_set(tmp_path_factory.mktemp("ml") / "set", n=64)


@pytest.fixture(scope="module")
def probe_run(manifest, tmp_path_factory):
    from tlearn import fit

    return fit(manifest, tmp_path_factory.mktemp("ml-runs") / "probe", **FAST)


def _write(path, header, rows):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


# ---- manifests --------------------------------------------------------------------------------------------------

def test_labels_column_and_empty_label(manifest):
    splits = load_splits(manifest, empty_label="No Finding")
    assert splits.classes == sorted(COLOURS)  # "No Finding" is the empty set, not a class
    samples = splits.train + splits.val + splits.test
    assert all(isinstance(s, MultiLabelSample) for s in samples)
    rows = {r["path"]: r["labels"] for r in csv.DictReader(open(manifest))}
    for s in samples:
        names = rows[f"images/{s.path.name}"]
        expected = set() if names == "No Finding" else set(names.split("|"))
        assert {splits.classes[j] for j in s.labels} == expected
    assert any(not s.labels for s in samples)
    assert len(splits.test) == 16 and splits.val  # test rows kept; val held out of train
    without = load_splits(manifest)  # without --empty-label, "No Finding" is a label like the others
    assert "No Finding" in without.classes


def test_one_hot_manifest(tmp_path):
    for i in range(6):
        (tmp_path / f"{i}.png").write_bytes(b"")
    path = _write(tmp_path / "onehot.csv", ["path", "dog", "cat", "split"],
                  [[f"{i}.png", i % 2, int(i < 3), "train"] for i in range(6)])
    splits = load_splits(path, val_fraction=0.0)
    assert splits.classes == ["dog", "cat"]  # the columns' order
    y = label_matrix(splits.train, 2)
    assert y.tolist() == [[0, 1], [1, 1], [0, 1], [1, 0], [0, 0], [1, 0]]


@pytest.mark.parametrize("header,rows,message", [
    (["path", "label", "labels"], [["a.png", "x", "x|y"]], "both a `label` and a `labels` column"),
    (["path", "labels"], [["a.png", "x|y"], ["b.png", ""]], "line 3: empty labels"),
    (["path", "labels"], [["a.png", "No Finding|x"], ["b.png", "x"]], "excludes all other labels"),
    (["path", "x", "y"], [["a.png", "1", "2"]], "must hold 0 or 1"),
])
def test_bad_manifests_get_clear_errors(tmp_path, header, rows, message):
    path = _write(tmp_path / "m.csv", header, rows)
    with pytest.raises(DataError, match=message) as info:
        load_splits(path, empty_label="No Finding")
    assert str(path) in str(info.value)


@pytest.mark.parametrize("form", ["labels", "one-hot"])
def test_more_labels_than_the_cap_are_refused_naming_the_manifest_and_the_counts(tmp_path, form):
    from tlearn.constants import MAX_LABELS

    names = [f"l{k:03d}" for k in range(MAX_LABELS + 1)]
    if form == "labels":
        path = _write(tmp_path / "m.csv", ["path", "labels"], [[f"{k}.png", n] for k, n in enumerate(names)])
    else:
        path = _write(tmp_path / "m.csv", ["path", *names], [["0.png", *([1] * len(names))]])
    with pytest.raises(DataError, match=rf"{MAX_LABELS + 1} labels; .* at most {MAX_LABELS}") as info:
        load_splits(path)
    assert str(path) in str(info.value)
    at_cap = _write(tmp_path / "ok.csv", ["path", "labels", "split"],
                    [[f"{k}.png", n, "train"] for k, n in enumerate(names[:MAX_LABELS])])
    for k in range(MAX_LABELS):
        (tmp_path / f"{k}.png").write_bytes(b"")
    assert len(load_splits(at_cap, val_fraction=0.0).classes) == MAX_LABELS


def test_the_per_label_probe_logs_its_progress(caplog):
    import logging

    from tlearn.strategies.multilabel_probe import PROGRESS_EVERY, MultiLabelProbe

    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(40, 3)), (rng.random((40, PROGRESS_EVERY + 2)) < 0.5).astype(np.float32)
    with caplog.at_level(logging.INFO, logger="tlearn"):
        MultiLabelProbe(Cs=(1.0,), folds=2, features="raw").fit(X, Y)
    assert f"{PROGRESS_EVERY} of {PROGRESS_EVERY + 2} labels cross-validated" in caplog.text


# ---- metrics and loss -------------------------------------------------------------------------------------------

def test_per_label_metrics_match_sklearn():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, (200, 4))
    p = np.clip(0.3 * y + rng.uniform(0, 0.7, y.shape), 0, 1)
    m = multilabel_metrics(y, p, list("abcd"), [0.5] * 4)
    assert m["macro_auroc"] == pytest.approx(roc_auc_score(y, p, average="macro"))
    assert m["micro_auroc"] == pytest.approx(roc_auc_score(y, p, average="micro"))
    assert m["micro_average_precision"] == pytest.approx(average_precision_score(y, p, average="micro"))
    assert m["macro_average_precision"] == pytest.approx(average_precision_score(y, p, average="macro"))
    for j, row in enumerate(m["per_label"]):
        assert row["auroc"] == pytest.approx(roc_auc_score(y[:, j], p[:, j]))
        called = p[:, j] >= 0.5
        assert row["sensitivity"] == pytest.approx(called[y[:, j] == 1].mean())
        assert row["specificity"] == pytest.approx((~called)[y[:, j] == 0].mean())
        assert row["positives"] == y[:, j].sum()
    called = p >= 0.5
    assert m["accuracy"] == m["subset_accuracy"] == pytest.approx((called == y).all(1).mean())
    assert m["hamming_loss"] == pytest.approx((called != y).mean())
    for key in ("accuracy", "balanced_accuracy", "macro_f1", "loss", "n"):  # DESIGN.md's keys of every split
        assert key in m
    # thresholds chosen on these labels separate them at least as well as 0.5 (Youden's J)
    t = choose_thresholds(y, p)
    tuned = multilabel_metrics(y, p, list("abcd"), t)["per_label"]
    for a, b in zip(tuned, m["per_label"]):
        assert a["sensitivity"] + a["specificity"] >= b["sensitivity"] + b["specificity"] - 1e-12


def test_bce_loss_uses_the_sample_targets_and_mixes_them():
    targets = torch.tensor([[1, 0], [0, 1], [1, 1]], dtype=torch.float32)
    logits = torch.tensor([[2.0, -1.0], [0.5, 0.3]])
    model = lambda images: logits  # noqa: E731
    batch = Batch(torch.zeros(2, 3, 4, 4), torch.zeros(2, dtype=torch.long), torch.tensor([2, 0]),
                  torch.zeros(2, dtype=torch.long), (torch.tensor([1, 0]), 0.75))
    expected_y = 0.75 * targets[[2, 0]] + 0.25 * targets[[0, 2]]
    expected = torch.nn.functional.binary_cross_entropy_with_logits(logits, expected_y)
    assert BinaryCrossEntropy(targets)(model, batch) == pytest.approx(float(expected))


# ---- training, predict, export, runtime, serve ------------------------------------------------------------------

def test_probe_learns_the_labels_and_records_the_task(probe_run):
    test = probe_run.metrics["test"]
    assert test["task"] == "multilabel" and test["n"] == 16
    assert test["macro_auroc"] > 0.85, test  # chance is 0.5
    assert test["micro_average_precision"] > 0.8
    assert [r["label"] for r in test["per_label"]] == sorted(COLOURS)
    task = probe_run.config["task"]
    assert task["kind"] == "multilabel" and task["threshold_source"].startswith("val")
    assert set(task["thresholds"]) == set(COLOURS)
    assert probe_run.metrics["thresholds"]["values"] == task["thresholds"]
    assert probe_run.config["strategy"]["head"].startswith("sigmoid")
    html = (probe_run.path / "report.html").read_text()
    assert "Per label" in html and "macro AUROC" in html


def test_finetune_trains_a_sigmoid_head_with_bce(manifest, tmp_path):
    from tlearn import fit

    run = fit(manifest, tmp_path / "ft", strategy="finetune", epochs=2, **FAST)
    assert run.metrics["test"]["macro_auroc"] > 0.8, run.metrics["test"]
    rows = list(csv.DictReader(open(run.path / "history.csv")))
    assert len(rows) == 2 and all(float(r["val_loss"]) < 1.0 for r in rows)  # mean BCE per label, not CE


def test_predict_export_runtime_and_serve_give_the_same_label_probabilities(probe_run, manifest, tmp_path):
    from tlearn.export import export_run
    from tlearn.runtime import Classifier

    images = sorted((manifest.parent / "images").iterdir())[:6]
    preds, _ = probe_run.predict(images)
    torch_probs = np.array([[p.probabilities[c] for c in probe_run.classes] for p in preds])
    assert not np.allclose(torch_probs.sum(1), 1.0)  # independent sigmoids, not a softmax
    thresholds = dict(zip(probe_run.classes, probe_run.thresholds))
    for p in preds:
        assert p.labels == [c for c in probe_run.classes if p.probabilities[c] >= thresholds[c]]
        assert p.label == "|".join(p.labels)

    onnx = export_run(probe_run, "onnx", tmp_path / "m.onnx")
    assert onnx.metadata["task"] == "multilabel" and onnx.metadata["thresholds"] == thresholds
    assert onnx.parity["max_abs_diff"] < 1e-4
    clf = Classifier(onnx.path)
    runtime = clf.predict(images, k=3)
    assert np.abs(np.array([[r.probabilities[c] for c in clf.classes] for r in runtime]) - torch_probs).max() < 1e-4
    assert [r.labels for r in runtime] == [p.labels for p in preds]
    ts = export_run(probe_run, "torchscript", tmp_path / "m.pt")
    assert ts.parity["max_abs_diff"] < 1e-4

    out = subprocess.run([sys.executable, "-m", "tlearn.runtime", str(onnx.path), str(images[0])],
                         capture_output=True, text=True, check=True).stdout.splitlines()
    assert out[0] == "path,predicted,probability," + ",".join(f"p:{c}" for c in clf.classes)

    server = Server(onnx.path)
    try:
        body, headers = multipart([(p.name, p.read_bytes(), "image/png") for p in images[:2]])
        status, answer = server.request("/predict", body, headers)
    finally:
        server.stop()
    assert status == 200
    served = json.loads(answer)["predictions"]
    for s, p in zip(served, preds[:2]):
        assert s["labels"] == p.labels
        assert max(abs(s["probabilities"][c] - p.probabilities[c]) for c in clf.classes) < 1e-4


def test_cli_predict_and_evaluate(probe_run, manifest):
    def tlearn(*args):
        return subprocess.run([sys.executable, "-m", "tlearn", *args], capture_output=True, text=True, check=True)

    image = sorted((manifest.parent / "images").iterdir())[1]
    lines = tlearn("predict", str(probe_run.path), str(image)).stdout.splitlines()
    assert lines[0] == "path,predicted,probability," + ",".join(f"p:{c}" for c in probe_run.classes)
    metrics = json.loads(tlearn("evaluate", str(probe_run.path), str(manifest), "--json").stdout)
    assert metrics["n"] == 64 and metrics["macro_auroc"] > 0.85
    assert [r["threshold"] for r in metrics["per_label"]] == probe_run.thresholds  # the run's, not re-chosen
