"""Which epoch (or candidate) to keep when val accuracy is measured on a few hundred images.

"best" keeps the highest val accuracy (then the lowest val loss). "one-se" is the one-standard-error rule
(Breiman et al., 1984): the latest epoch whose val accuracy is within one binomial standard error of the best
so far. With 150 val images one image is 0.7 points, and the maximum over many noisy epochs picks an
unrepresentative one; within the noise, the end of the schedule is what the recipe was designed to reach.
"""
from __future__ import annotations

import math

KEEP_RULES = ("best", "one-se")


def standard_error(accuracy: float, n: int) -> float:
    """Binomial standard error of an accuracy measured on n images."""
    return math.sqrt(max(accuracy * (1.0 - accuracy), 0.0) / n) if n > 0 else 0.0


def within_one_se(accuracy: float, top: float, n: int) -> bool:
    return accuracy >= top - standard_error(top, n) - 1e-12


def kept_row(history: list[dict], rule: str, n_val: int) -> dict | None:
    """The history row the training loop keeps under rule (rows without val accuracy are never kept)."""
    rows = [r for r in history if isinstance(r.get("val_accuracy"), (int, float))]
    if not rows:
        return None
    if rule == "one-se":
        top = max(r["val_accuracy"] for r in rows)
        return [r for r in rows if within_one_se(r["val_accuracy"], top, n_val)][-1]
    return max(rows, key=lambda r: (r["val_accuracy"], -r.get("val_loss", 0.0)))
