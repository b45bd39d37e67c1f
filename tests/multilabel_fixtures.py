"""A tiny synthetic multi-label manifest: each label is a coloured square somewhere on a grey image."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from PIL import Image

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 30), "blue": (30, 30, 220)}


def write_multilabel_set(root: Path, n: int = 60, size: int = 32, seed: int = 0, splits: bool = True,
                         empty_label: str = "No Finding") -> Path:
    """root/labels.csv (path,labels,split): about 40% of images carry each label; none: `empty_label`."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        img = np.clip(rng.normal(128, 20, (size, size, 3)), 0, 255)
        names = [c for c in COLOURS if rng.random() < 0.4]
        for name in names:
            s = size // 3
            y, x = rng.integers(0, size - s, 2)
            img[y:y + s, x:x + s] = COLOURS[name]
        path = root / "images" / f"img{i:03d}.png"
        Image.fromarray(img.astype(np.uint8)).save(path)
        split = "test" if splits and i % 4 == 3 else "train"
        rows.append([f"images/{path.name}", "|".join(names) or empty_label, split])
    with open(root / "labels.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "labels", "split"])
        w.writerows(rows)
    return root / "labels.csv"
