"""The GTSRB track manifest: val holds out whole physical-sign tracks, so no sign is in train and val."""
from __future__ import annotations

import importlib.util
import subprocess
import sys
from collections import Counter
from pathlib import Path

from conftest import shared_dataset
from tlearn.data.layout import load_splits

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gtsrb_tracks.py"


def _track(path: Path) -> tuple[str, str]:
    return path.parent.name, path.name.split("_")[0]


def test_manifest_holds_out_whole_tracks_per_class(tmp_path):
    data = shared_dataset("gtsrb_32px")
    out = tmp_path / "tracks.csv"
    subprocess.run([sys.executable, str(SCRIPT), "--data", str(data), "--out", str(out)], check=True,
                   capture_output=True)
    splits = load_splits(out)
    assert len(splits.classes) == 43 and len(splits.test) == 860
    train_tracks = {_track(s.path) for s in splits.train}
    val_tracks = {_track(s.path) for s in splits.val}
    assert val_tracks and not train_tracks & val_tracks
    n_train = len(list((data / "train").rglob("*.png")))
    assert len(splits.train) + len(splits.val) == n_train
    assert 0.15 < len(splits.val) / n_train < 0.3
    per_class = Counter(splits.classes[s.label] for s in splits.train)
    assert set(per_class) == set(splits.classes)  # every class keeps training images


def test_track_split_is_repeatable(tmp_path):
    data = shared_dataset("gtsrb_32px")
    spec = importlib.util.spec_from_file_location("gtsrb_tracks", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    a = module.track_split(data / "train", 0.2, seed=0)
    assert a == module.track_split(data / "train", 0.2, seed=0)
    assert a != module.track_split(data / "train", 0.2, seed=1)
