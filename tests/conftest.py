"""Shared fixtures: real data read in place from ../shared/data, and a private feature cache per session."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

SHARED_DATA = Path(os.environ.get("TLEARN_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


@pytest.fixture(scope="session", autouse=True)
def _private_cache(tmp_path_factory):
    """Tests never read or pollute the user's feature cache."""
    os.environ["TLEARN_CACHE"] = str(tmp_path_factory.mktemp("tlearn-cache"))
    os.environ["TLEARN_OFFLINE"] = "1"
    yield


def shared_dataset(name: str) -> Path:
    path = SHARED_DATA / name
    if not path.is_dir():
        pytest.skip(f"shared data {path} is not available")
    return path


@pytest.fixture(scope="session")
def hymenoptera() -> Path:
    return shared_dataset("hymenoptera")


def write_class_tree(root: Path, classes: dict[str, int], size: int = 40, seed: int = 0) -> Path:
    """Tiny synthetic class tree: each class a distinct colour with noise (learnable, fast)."""
    rng = np.random.default_rng(seed)
    for k, (name, n) in enumerate(classes.items()):
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        base = np.array([(k * 97) % 256, (k * 53 + 80) % 256, (k * 31 + 160) % 256], dtype=np.float64)
        for i in range(n):
            arr = np.clip(base + rng.normal(0, 25, (size, size, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(arr).save(folder / f"{name}_{i}.png")
    return root


@pytest.fixture
def tiny_tree(tmp_path) -> Path:
    """A flat 3-class tree of 12 images per class."""
    return write_class_tree(tmp_path / "tiny", {"red": 12, "green": 12, "blue": 12})


def smooth_photo(seed: int, size: int = 96) -> Image.Image:
    """A smooth random picture with structure at several scales (what a perceptual hash looks at)."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0, 255, (6, 6, 3)).astype(np.uint8)
    img = Image.fromarray(coarse).resize((size, size), Image.Resampling.BICUBIC)
    noise = rng.normal(0, 6, (size, size, 3))
    return Image.fromarray(np.clip(np.asarray(img, dtype=float) + noise, 0, 255).astype(np.uint8))
