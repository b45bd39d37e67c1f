"""Time for --strategy auto: the clock against the budget, and what a candidate is expected to cost.

Estimates start from a micro-benchmark (the median of a few forward+backward steps at each input size) and are replaced by
each candidate's measured epoch seconds as soon as it has trained one; no work starts that is not expected
to finish before the budget minus the reserve kept for the final evaluation and report.
"""
from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field

import torch
from torch import nn

from ..backbones.model import TransferModel
from ..constants import DEFAULT_AUTO_BUDGET_MINUTES as DEFAULT_BUDGET_MINUTES
from ..train.costs import eval_seconds_per_image, train_seconds_per_image
from ..train.distributed import DistEnv, training_threads

SAFETY = 1.25  # estimates are multiplied by this before they are compared with the time left
MEASURED_MARGIN = 1.1  # the same for the next epoch of a candidate whose epochs have been timed
FINAL_FIXED_SECONDS = 15.0  # saving the model, the report, and starting the process
MAX_BENCH_BATCH = 16  # per-image costs at the training batch, capped: the benchmark itself must stay cheap


class Clock:
    """Seconds spent (this process plus earlier interrupted ones) and left before the budget's reserve."""

    def __init__(self, total_seconds: float, spent_before: float = 0.0):
        self.total = float(total_seconds)
        self.spent_before = float(spent_before)
        self.start = time.perf_counter()
        self.reserve = 0.0  # kept for the final evaluation, report and start-up

    def spent(self) -> float:
        return self.spent_before + time.perf_counter() - self.start

    def left(self) -> float:
        return self.total - self.reserve - self.spent()

    def fits(self, seconds: float, margin: float = SAFETY) -> bool:
        return seconds * margin <= self.left()


def check_budget(minutes: float | None) -> float:
    """Budget in seconds; None: the default."""
    m = DEFAULT_BUDGET_MINUTES if minutes is None else float(minutes)
    if not math.isfinite(m) or m <= 0:
        raise ValueError(f"--budget-minutes must be a positive number of minutes, not {minutes!r}.")
    return 60.0 * m


@dataclass
class CostModel:
    """Per-image seconds by input size (benchmarked once per size, calibrated by measured epochs)."""

    backbone: nn.Module
    feature_dim: int
    architecture: str
    decode_per_image: float
    batch: int = MAX_BENCH_BATCH  # the training batch
    eval_per_image: dict[int, float] = field(default_factory=dict)
    train_per_image: dict[int, float] = field(default_factory=dict)
    calibration: list[float] = field(default_factory=list)  # measured / estimated epoch seconds

    def _bench(self, size: int) -> None:
        if size in self.eval_per_image:
            return
        model = TransferModel(copy.deepcopy(self.backbone), self.feature_dim, 2, self.architecture)
        model = model.to(memory_format=torch.channels_last)
        batch = max(1, min(self.batch, MAX_BENCH_BATCH))
        previous = torch.get_num_threads()
        torch.set_num_threads(training_threads(DistEnv())[0])  # as many threads as the training loop will use
        try:
            self.eval_per_image[size] = eval_seconds_per_image(model, size, batch)
            self.train_per_image[size] = train_seconds_per_image(model, size, batch)
        finally:
            torch.set_num_threads(previous)

    def eval_seconds(self, size: int, n: int) -> float:
        self._bench(size)
        return n * self.eval_per_image[size]

    def epoch_seconds(self, train_size: int, predict_size: int, n_train: int, n_val: int,
                      calibrated: bool = True) -> float:
        """One fine-tuning epoch: forward+backward over train, forward over val."""
        self._bench(train_size)
        self._bench(predict_size)
        raw = n_train * self.train_per_image[train_size] + n_val * self.eval_per_image[predict_size]
        factor = max(self.calibration) if (calibrated and self.calibration) else 1.0
        return raw * factor

    def probe_seconds(self, size: int, n_train: int, n_val: int, fit_seconds: float) -> float:
        """A linear probe: decode and forward train and val once, then the logistic-regression fit."""
        return (n_train + n_val) * self.decode_per_image + self.eval_seconds(size, n_train + n_val) + fit_seconds

    def decode_seconds(self, n: int) -> float:
        return n * self.decode_per_image

    def final_seconds(self, size: int, n_images: int) -> float:
        """fit's closing evaluation of val and test, saving and the report."""
        return FINAL_FIXED_SECONDS + n_images * self.decode_per_image + self.eval_seconds(size, n_images)
