"""Run directories made in a test, without training: for report and compare tests that must stay fast."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import yaml

from tlearn.data.layout import Sample
from tlearn.evaluate.metrics import classification_metrics
from tlearn.runs.layout import write_history, write_marker, write_predictions


def fake_run(root: Path, classes: list[str], images: dict[str, list[tuple[Path, int]]], *, seed: int = 0,
             skill: float = 2.5, history_rows: int = 1, data_root: str = "/data/fake") -> Path:
    """A run directory whose predictions are noisy but mostly right (higher skill: more right).

    images: split -> [(image path, true class index)]; the paths need not exist (the report must cope).
    """
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    k = len(classes)
    metrics: dict = {}
    for split, items in images.items():
        labels = np.array([y for _, y in items])
        logits = rng.normal(0, 1, (len(items), k))
        logits[np.arange(len(items)), labels] += skill
        probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
        write_predictions(root / "predictions" / f"{split}.csv", [Sample(Path(p), y) for p, y in items], probs,
                          classes)
        metrics[split] = classification_metrics(labels, probs)
    metrics.update(train_seconds=12.5, total_seconds=13.0, params=1234,
                   skipped=[{"path": "/data/fake/train/a/broken.jpg", "reason": "corrupt or truncated image"}])
    config = {
        "fit": {"data": data_root, "strategy": "linear-probe", "seed": seed},
        "strategy": {"name": "linear-probe", "C": 1.0},
        "backbone": {"name": "efficientnet_lite0", "architecture": "efficientnet_lite0", "feature_dim": 1280,
                     "weights": "pretrained", "weights_sha256": "ab" * 32, "data_config": {"input_size": 224}},
        "data": {"root": data_root, "val_source": "val split", "classes": classes,
                 "counts": {"train": 100, **{s: len(v) for s, v in images.items()}}},
        "precision": "fp32", "device": "cpu", "created": "2026-01-01T00:00:00+00:00",
        "versions": {"tlearn": "0.1.0"},
    }
    (root / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    (root / "classes.json").write_text(json.dumps(classes))
    (root / "metrics.json").write_text(json.dumps(metrics))
    (root / "model.safetensors").write_bytes(b"\0" * 2048)
    rows = [{"epoch": e + 1, "lr": 0.01, "train_loss": 1.0 / (e + 1), "val_loss": 1.2 / (e + 1) + 0.1,
             "val_accuracy": 0.5 + 0.4 * e / max(history_rows, 1), "seconds": 1.0} for e in range(history_rows)]
    write_history(root / "history.csv", rows)
    write_marker(root, "complete", {}, ["config.yaml", "classes.json", "metrics.json", "model.safetensors",
                                        "history.csv", *(f"predictions/{split}.csv" for split in images)])
    return root


def labelled_images(folder: Path, classes: list[str], per_class: int) -> list[tuple[Path, int]]:
    """The first per_class images of each class folder, with their class index."""
    out = []
    for k, name in enumerate(classes):
        files = sorted(p for p in (folder / name).iterdir() if p.is_file())[:per_class]
        out += [(p, k) for p in files]
    return out
