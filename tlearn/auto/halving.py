"""Successive halving over fine-tuning candidates: rungs of growing epochs, the better half goes on.

With n candidates there are ceil(log2 n) + 1 rungs; rung k trains every survivor to 2^(k-K+1) of its own
schedule (the last rung: the whole schedule), then keeps the better half (ceil) by val accuracy.
"""
from __future__ import annotations

import math
from dataclasses import dataclass


def rung_count(n: int) -> int:
    return 1 if n <= 1 else math.ceil(math.log2(n)) + 1


def rung_targets(total_epochs: int, head_epochs: int, rungs: int) -> list[int]:
    """Cumulative epochs a candidate has trained at the end of each rung (strictly increasing, the last its
    whole schedule; the first at least one epoch after the head-only ones)."""
    out: list[int] = []
    for k in range(rungs):
        t = total_epochs if k == rungs - 1 else math.ceil(total_epochs * 2.0 ** (k - rungs + 1))
        t = max(t, head_epochs + 1, (out[-1] + 1) if out else 1)
        out.append(min(t, total_epochs))
    return out


def keep_count(n: int) -> int:
    return max(1, math.ceil(n / 2))


@dataclass
class Costing:
    """What one candidate is expected to cost: a start-up (decode, head) and seconds per epoch."""

    name: str
    total_epochs: int
    head_epochs: int
    epoch_seconds: float
    start_seconds: float


def halving_cost(items: list[Costing]) -> float:
    """Seconds for a whole halving over items, assuming the most expensive candidates survive each rung."""
    if not items:
        return 0.0
    rungs = rung_count(len(items))
    targets = {c.name: rung_targets(c.total_epochs, c.head_epochs, rungs) for c in items}
    cost = sum(c.start_seconds + targets[c.name][0] * c.epoch_seconds for c in items)
    alive = len(items)
    for k in range(1, rungs):
        alive = keep_count(alive)
        steps = sorted(((targets[c.name][k] - targets[c.name][k - 1]) * c.epoch_seconds for c in items), reverse=True)
        cost += sum(steps[:alive])
    return cost


SCALES_LONGER = (2.0, 1.5)  # longer schedules, when every candidate fits at that length
MIN_EPOCHS = 2  # a shortened schedule keeps at least this many epochs after the head-only ones


def choose(items_at, names: list[str], available: float) -> tuple[list[str], float, dict[str, str]]:
    """(candidates to run in priority order, schedule scale, why each other one is left out).

    items_at(names, scale) -> [Costing]. Greedy at the recipes' own length in priority order; then longer
    if everything fits; else the first candidate that fits alone, with as many epochs as fit (at least
    MIN_EPOCHS; scale = epochs / the recipe's).
    """
    chosen: list[str] = []
    left_out: dict[str, str] = {}
    for name in names:
        cost = halving_cost(items_at(chosen + [name], 1.0))
        if cost <= available:
            chosen.append(name)
        else:
            left_out[name] = f"not run: the halving with it needs ~{cost:.0f}s, {max(available, 0):.0f}s left"
    if chosen and len(chosen) == len(names):
        for scale in SCALES_LONGER:
            if halving_cost(items_at(chosen, scale)) <= available:
                return chosen, scale, left_out
    if chosen:
        return chosen, 1.0, left_out
    for name in names:  # the first candidate that fits alone, with as many epochs as fit
        full = items_at([name], 1.0)[0]
        main = full.total_epochs - full.head_epochs
        for epochs in range(main - 1, MIN_EPOCHS - 1, -1):
            if halving_cost(items_at([name], epochs / main)) <= available:
                return [name], epochs / main, {n: why for n, why in left_out.items() if n != name}
    return [], 1.0, left_out


def scaled_epochs(epochs: int, scale: float) -> int:
    return max(1, round(epochs * scale))
