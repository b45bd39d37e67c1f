"""The shape of run directories (their files, and the nested keys of config.yaml and metrics.json) for fit
(linear-probe, finetune), distill (with its student-alone run) and extend (analytic, lwf) on tiny data.

`python tests/run_shapes.py` writes tests/run_shapes.json, the shapes the run pipeline must keep (new keys may be
added, none dropped); tests/test_run_shapes.py compares a fresh capture with it.
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
EXPECTED = HERE / "run_shapes.json"
TINY = dict(backbone="compact_cnn", weights="none", image_size=24, num_workers=0, progress=False)
# values under these keys are data (class names, library names, per-label or per-candidate values), not format
DATA_KEYS = {"counts", "classes", "versions", "images_added", "per_class", "thresholds", "values", "groups",
             "cv_log_likelihood", "lrs", "C_per_label", "fallback_labels",
             "ci95"}  # ci95: which intervals exist depends on the resamples


def key_paths(obj, prefix: str = "") -> set[str]:
    """Dotted paths of every dict key (recursing into dicts and lists of dicts; not under DATA_KEYS)."""
    paths: set[str] = set()
    if isinstance(obj, dict):
        for key, value in obj.items():
            path = f"{prefix}{key}"
            paths.add(path)
            if key not in DATA_KEYS:
                paths |= key_paths(value, path + ".")
    elif isinstance(obj, list):
        for item in obj:
            paths |= key_paths(item, prefix.rstrip(".") + "[].")
    return paths


def run_shape(folder: Path) -> dict:
    """Files (relative, sorted; checkpoints and tensorboard logs, which depend on what is installed, left out)
    and the key paths of config.yaml and metrics.json."""
    files = sorted(str(p.relative_to(folder)) for p in folder.rglob("*")
                   if p.is_file() and not {"checkpoints", "tensorboard"} & set(p.relative_to(folder).parts))
    shape = {"files": files}
    for name, load in (("config.yaml", yaml.safe_load), ("metrics.json", json.loads)):
        path = folder / name
        shape[name] = sorted(key_paths(load(path.read_text()))) if path.is_file() else None
    return shape


def make_data(root: Path) -> dict[str, Path]:
    sys.path.insert(0, str(HERE))
    from conftest import write_class_tree

    old = root / "old"
    write_class_tree(old / "train", {"red": 8, "green": 8, "blue": 8}, size=24, seed=0)
    write_class_tree(old / "test", {"red": 4, "green": 4, "blue": 4}, size=24, seed=1)
    new = root / "new"
    write_class_tree(new / "train", {"cyan": 6, "plum": 6}, size=24, seed=2)
    write_class_tree(new / "test", {"cyan": 3, "plum": 3}, size=24, seed=3)
    return {"old": old, "new": new}


def capture(root: Path) -> dict[str, dict]:
    """Write each kind of run under root and return {kind: shape}."""
    from tlearn.distill import distill
    from tlearn.fitting import fit
    from tlearn.incremental.extension import extend

    data = make_data(root / "data")
    runs = root / "runs"
    fit(data["old"], runs / "probe", strategy="linear-probe", **TINY)
    fit(data["old"], runs / "finetune", strategy="finetune", epochs=1, augment="none", **TINY)
    distill(data["old"], runs / "finetune", runs / "distill", student="compact_cnn", student_weights="none",
            student_size=16, epochs=1, student_alone=True, num_workers=0, progress=False, latency_repeats=1)
    extend(runs / "probe", data["new"], runs / "extend-analytic", progress=False)
    extend(runs / "finetune", data["new"], runs / "extend-lwf", method="lwf", epochs=1, progress=False)
    kinds = ["probe", "finetune", "distill", "extend-analytic", "extend-lwf"]
    return {kind: run_shape(runs / kind) for kind in kinds}


if __name__ == "__main__":
    os.environ.setdefault("TLEARN_OFFLINE", "1")
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("TLEARN_CACHE", str(Path(tmp) / "cache"))
        shapes = capture(Path(tmp))
    EXPECTED.write_text(json.dumps(shapes, indent=1, sort_keys=True) + "\n")
    print(f"wrote {EXPECTED}")
