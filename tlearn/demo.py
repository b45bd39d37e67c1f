"""`tlearn demo`: the main job on real images that arrive with a package, so it runs on a fresh machine.

Source, first found: Fashion-MNIST from Debian's `dataset-fashion-mnist` (Zalando's 28x28 product photos,
10 classes), else scikit-learn's bundled handwritten digits (8x8, 10 classes). A stratified subset is written
once as a class-folder tree in the tlearn cache, then trained on like any user folder.
"""
from __future__ import annotations

import gzip
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from .features.cache import default_cache_dir

log = logging.getLogger("tlearn")

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_CLASSES = ["t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag",
                   "ankle-boot"]


@dataclass
class DemoData:
    name: str
    source: str
    path: Path
    counts: dict[str, int]


def _read_idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        raw = f.read()
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def _load_source() -> tuple[str, str, list[str], dict[str, tuple[np.ndarray, np.ndarray]]]:
    if (FASHION_DIR / "train-images-idx3-ubyte.gz").is_file():
        pools = {
            "train": (_read_idx(FASHION_DIR / "train-images-idx3-ubyte.gz"),
                      _read_idx(FASHION_DIR / "train-labels-idx1-ubyte.gz")),
            "test": (_read_idx(FASHION_DIR / "t10k-images-idx3-ubyte.gz"),
                     _read_idx(FASHION_DIR / "t10k-labels-idx1-ubyte.gz")),
        }
        return "fashion-mnist", f"Debian dataset-fashion-mnist ({FASHION_DIR})", FASHION_CLASSES, pools
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.clip(digits.images * 16, 0, 255).astype(np.uint8)  # 0..16 -> 0..255
    rng = np.random.default_rng(0)
    order = rng.permutation(len(images))
    cut = len(order) // 2
    pools = {"train": (images[order[:cut]], digits.target[order[:cut]]),
             "test": (images[order[cut:]], digits.target[order[cut:]])}
    return "digits", "scikit-learn's bundled handwritten digits", [str(d) for d in range(10)], pools


def prepare_demo_data(root: Path | None = None, per_class: dict[str, int] | None = None, seed: int = 0) -> DemoData:
    """Write (once) a stratified train/val/test class tree of the demo images and return where it is."""
    per_class = per_class or {"train": 60, "val": 30, "test": 30}
    name, source, classes, pools = _load_source()
    root = Path(root or default_cache_dir() / "demo") / f"{name}-{'-'.join(map(str, per_class.values()))}-s{seed}"
    marker = root / ".complete"
    counts = {split: n * len(classes) for split, n in per_class.items()}
    if marker.is_file():
        return DemoData(name, source, root, counts)
    rng = np.random.default_rng(seed)
    taken: set[int] = set()
    for split, n in per_class.items():
        images, labels = pools["test" if split == "test" else "train"]
        for k, cls in enumerate(classes):
            candidates = np.flatnonzero(labels == k)
            if split != "test":  # train and val come from the same pool: keep them disjoint
                candidates = np.array([i for i in candidates if i not in taken])
            chosen = rng.choice(candidates, size=n, replace=False)
            taken.update(chosen.tolist())
            folder = root / split / cls
            folder.mkdir(parents=True, exist_ok=True)
            for i in chosen:
                Image.fromarray(images[i]).save(folder / f"{split}_{i}.png")
    marker.write_text(source + "\n")
    return DemoData(name, source, root, counts)


def run_demo(out: str | Path = "tlearn-demo", progress: bool = True, study: bool = True) -> dict:
    """Prepare the data, train a linear probe on the default backbone, evaluate; then (study=True) a short
    transfer study against training from scratch. Return what happened."""
    from .fitting import fit

    data = prepare_demo_data()
    log.info("demo data: %s from %s\n  %s (train %d, val %d, test %d images)", data.name, data.source, data.path,
             data.counts["train"], data.counts["val"], data.counts["test"])
    run = fit(data.path, Path(out) / "linear-probe", progress=progress)
    result = {"data": data, "runs": {"linear-probe": run}}
    if study:
        from .study.presets import run_demo_study

        done = run_demo_study(data.path, Path(out) / "study")
        result["study"] = done
        result["notes"] = ["\nTransfer study (scratch vs linear-probe):"] + [
            f"  {line}" for line in done.summary["sentences"]] + [f"  report: {done.report}"]
    return result
