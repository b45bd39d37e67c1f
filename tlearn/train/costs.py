"""What a model costs per image, measured: the median of a few timed steps on random input after a warm-up.

Budgets (fit --strategy auto, distill --budget-minutes) plan from these figures before any real work starts.
"""
from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch
from torch import nn

BENCH_REPEATS = 3  # timed steps after a warm-up; their median (one step alone was 2.3x slow now and then)


def median_seconds(step: Callable[[], object], repeats: int = BENCH_REPEATS) -> float:
    """Seconds one call of step takes: the median of `repeats` timed calls after an untimed one."""
    step()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


@torch.no_grad()
def eval_seconds_per_image(model: nn.Module, size: int, batch: int) -> float:
    """Seconds per image of an eval-mode forward pass at batch `batch`, `size` px."""
    x = torch.randn(batch, 3, size, size).contiguous(memory_format=torch.channels_last)
    model.eval()
    return median_seconds(lambda: model(x)) / batch


def train_seconds_per_image(model: nn.Module, size: int, batch: int) -> float:
    """Seconds per image of a training forward and backward pass at batch `batch`, `size` px."""
    x = torch.randn(batch, 3, size, size).contiguous(memory_format=torch.channels_last)
    model.train()

    def step():
        model(x).sum().backward()
        model.zero_grad(set_to_none=True)

    return median_seconds(step) / batch
