"""Synthetic images whose class is decided by one small localized mark, for heatmap tests.

Each 32 px image: grey noise, a 'key' square whose colour is the class (red or green) and an equally salient
'distractor' square (blue) elsewhere. A model that learned the task must look at the key, not the distractor.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

SIZE, MARK = 32, 8
COLOURS = {"red": (230, 40, 40), "green": (40, 210, 40)}
DISTRACTOR = (40, 40, 230)


def _place(rng, taken: tuple[int, int] | None) -> tuple[int, int]:
    while True:
        y, x = (int(v) for v in rng.integers(0, SIZE - MARK + 1, 2))
        if taken is None or abs(y - taken[0]) >= MARK + 2 or abs(x - taken[1]) >= MARK + 2:
            return y, x


def write_marked_tree(root: Path, per_class: int, seed: int = 0) -> dict[str, tuple[tuple[int, int], tuple[int, int]]]:
    """root/<class>/<i>.png; returns path -> ((key y, x), (distractor y, x)) of each image's squares."""
    rng = np.random.default_rng(seed)
    where = {}
    for name, colour in COLOURS.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            arr = np.clip(rng.normal(120, 25, (SIZE, SIZE, 3)), 0, 255)
            key = _place(rng, None)
            dis = _place(rng, key)
            arr[key[0]:key[0] + MARK, key[1]:key[1] + MARK] = colour
            arr[dis[0]:dis[0] + MARK, dis[1]:dis[1] + MARK] = DISTRACTOR
            path = root / name / f"{name}_{i:03d}.png"
            Image.fromarray(arr.astype(np.uint8)).save(path)
            where[str(path)] = (key, dis)
    return where


def mark_mask(corner: tuple[int, int]) -> np.ndarray:
    mask = np.zeros((SIZE, SIZE), dtype=bool)
    mask[corner[0]:corner[0] + MARK, corner[1]:corner[1] + MARK] = True
    return mask
