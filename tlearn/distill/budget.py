"""distill --budget-minutes: the schedule (stored views per image, student epochs) planned from measured costs.

As for fit --strategy auto (tlearn.auto.budget): a few timed batches give the seconds per image of the student's
training step and forward pass, and of the teacher's forward pass (per stored view: measured on the first batches
of real views, in the precision they will run in). The plan takes the most epochs whose estimate, times SAFETY,
fits what is left of the budget after the final evaluation and latency measurement; the views per image follow
the epochs (each stored view seen about REUSE times). Training then stops cleanly at the deadline (no epoch starts
that would overrun it), keeping the best student on val.
"""
from __future__ import annotations

import copy
import logging
import math
from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from ..train.costs import eval_seconds_per_image, train_seconds_per_image
from ..train.distributed import DistEnv, training_threads

log = logging.getLogger("tlearn")

SAFETY = 1.15  # estimates are multiplied by this before they are compared with the time left
ALONE_SLACK = 1.4  # the student alone may overrun its estimate by this much before its deadline stops it
REUSE = 3  # a planned schedule stores about one view per image for every REUSE epochs
MAX_PLANNED_VIEWS = 16
MAX_PLANNED_EPOCHS = 300
FINAL_FIXED_SECONDS = 20.0  # writing the run and its report, loading the teacher's test figures, start-up
DECODE_SECONDS_PER_IMAGE = 0.01  # the final evaluation decodes val and test from their files
LATENCY_SINGLE_THREAD = 2.0  # latency runs on one thread: about this many times the training threads' time
MAX_BENCH_BATCH = 16
# a real training epoch against the random-input micro-benchmark of its steps: reading and cropping the images,
# mixup, the optimizer, BatchNorm in train mode (flowers, Lite0 at 128 px, 2 cores: 1.4x on stored views, 1.7x
# for the student alone's live crops)
STEP_OVERHEAD = 1.5


@dataclass
class DistillCosts:
    """Measured seconds per image."""

    student_train: float  # forward + backward at the student's training size
    student_eval: float  # forward at its input size
    teacher_eval: float  # forward at the teacher's training size (live teaching, the final evaluation)
    teacher_view: float  # one stored view: crop + forward in the precision the views use (0 when none are needed)

    def to_dict(self) -> dict:
        return {k: round(v, 5) for k, v in asdict(self).items()}


def measure_costs(student: nn.Module, student_size: int, teacher: nn.Module, teacher_size: int,
                  batch: int) -> tuple[float, float, float]:
    """(student train, student eval, teacher eval) seconds per image, timed on random batches with the training
    loop's threads (the training step times STEP_OVERHEAD)."""
    batch = max(1, min(batch, MAX_BENCH_BATCH))
    previous = torch.get_num_threads()
    torch.set_num_threads(training_threads(DistEnv())[0])
    try:
        probe = copy.deepcopy(student).to(memory_format=torch.channels_last)
        train = STEP_OVERHEAD * train_seconds_per_image(probe, student_size, batch)
        student_eval = eval_seconds_per_image(probe, student_size, batch)
        teacher_eval = eval_seconds_per_image(teacher.eval().to(memory_format=torch.channels_last), teacher_size,
                                              batch)
    finally:
        torch.set_num_threads(previous)
    return train, student_eval, teacher_eval


@dataclass
class Workload:
    """What the schedule trains on."""

    train_images: int  # labelled + unlabeled: one distilled epoch
    labelled_images: int  # one student-alone epoch
    val_images: int
    final_images: int  # evaluated at the end (val + test), by the teacher and both students
    views_stored: int = 0  # views per image already in the cache
    live_teacher: bool = False  # the teacher judges every image of every epoch
    alone: bool = True
    latency_repeats: int = 20


@dataclass
class DistillPlan:
    epochs: int
    views: int  # 0: no stored views
    budget_seconds: float
    spent_seconds: float  # before planning (loading, decoding, measuring)
    estimate: dict = field(default_factory=dict)  # seconds: views, distill, alone, final
    costs: dict = field(default_factory=dict)
    fits: bool = True

    def to_dict(self) -> dict:
        return {"epochs": self.epochs, "views": self.views, "budget_seconds": round(self.budget_seconds, 1),
                "spent_before_plan": round(self.spent_seconds, 1),
                "estimate_seconds": {k: round(v, 1) for k, v in self.estimate.items()}, "costs": self.costs,
                "fits": self.fits}


def final_seconds(costs: DistillCosts, work: Workload) -> float:
    """The closing evaluation of val and test (teacher, distilled student, student alone) and the latency runs."""
    students = 2 if work.alone else 1
    evaluate = work.final_images * (DECODE_SECONDS_PER_IMAGE * (students + 1) + students * costs.student_eval
                                    + costs.teacher_eval)
    per_round = costs.teacher_eval + costs.student_eval
    latency = LATENCY_SINGLE_THREAD * per_round * ((3 + work.latency_repeats) * 2 + 6 * 32)  # batch 1 ~2x dearer
    return FINAL_FIXED_SECONDS + evaluate + latency


def planned_views(epochs: int) -> int:
    return max(1, min(MAX_PLANNED_VIEWS, math.ceil(epochs / REUSE)))


def estimate(costs: DistillCosts, work: Workload, epochs: int, views: int) -> dict:
    distill_epoch = work.train_images * (costs.student_train + (costs.teacher_eval if work.live_teacher else 0.0)) \
        + work.val_images * costs.student_eval
    alone_epoch = work.labelled_images * costs.student_train + work.val_images * costs.student_eval
    return {"views": max(0, views - work.views_stored) * work.train_images * costs.teacher_view,
            "distill": epochs * distill_epoch, "alone": epochs * alone_epoch if work.alone else 0.0,
            "final": final_seconds(costs, work)}


def plan_schedule(budget_seconds: float, spent_seconds: float, costs: DistillCosts, work: Workload, *,
                  epochs: int | None = None, views: int | None = None, stored: bool = True) -> DistillPlan:
    """The most epochs (and, with stored views, views per image) expected to fit the budget; what is given is
    kept. Below one epoch and one view the plan is that, marked fits=False."""
    left = budget_seconds - spent_seconds

    def views_for(e: int) -> int:
        return 0 if not stored else views if views is not None else planned_views(e)

    candidates = [epochs] if epochs is not None else range(1, MAX_PLANNED_EPOCHS + 1)
    best = None
    for e in candidates:
        parts = estimate(costs, work, e, views_for(e))
        if sum(parts.values()) * SAFETY <= left:
            best = (e, parts)
        elif epochs is None:
            break
    fits = best is not None
    if best is None:
        e = epochs or 1
        best = (e, estimate(costs, work, e, views_for(e)))
    e, parts = best
    return DistillPlan(epochs=e, views=views_for(e), budget_seconds=budget_seconds, spent_seconds=spent_seconds,
                       estimate=parts, costs=costs.to_dict(), fits=fits)
