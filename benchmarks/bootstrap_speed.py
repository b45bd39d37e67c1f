"""Seconds for bootstrap intervals (tlearn.evaluate.intervals) of 10,000 images, by image and by 3,333 groups.

    python benchmarks/bootstrap_speed.py
"""
from __future__ import annotations

import time

import numpy as np

from tlearn.constants import BOOTSTRAP_RESAMPLES
from tlearn.evaluate.intervals import bootstrap_intervals


def main(n: int = 10_000) -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, n)
    p1 = np.clip(0.35 * y + 0.65 * rng.random(n), 0, 1)
    probs = np.stack([1 - p1, p1], axis=1)
    groups = [f"p{i // 3}" for i in range(n)]
    for name, g in (("images", None), ("groups", groups)):
        start = time.perf_counter()
        bootstrap_intervals(y, probs, g)
        print(f"{BOOTSTRAP_RESAMPLES} resamples of {n} images by {name}: {time.perf_counter() - start:.2f} s")


if __name__ == "__main__":
    main()
