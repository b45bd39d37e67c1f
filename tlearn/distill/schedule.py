"""Before the students train: the training images decoded, the schedule planned from the budget, the teacher's
stored views computed (or read back).

training + unlabeled images -> decoded squares (the decoded-image cache) -> [--budget-minutes: measured costs ->
plan: epochs, views per image, the deadline] -> [--views: the teacher's stored views (stored_views.py)].
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from ..backbones.model import TransferModel
from ..data.decoded_cache import DecodedImages, decode_images, decode_joined
from ..data.layout import DataSplits, Sample
from ..data.transforms import DataConfig
from ..train.data import default_train_workers
from .budget import ALONE_SLACK, SAFETY, DistillCosts, DistillPlan, Workload, measure_costs, plan_schedule, planned_views
from .config import DistillConfig
from .stored_views import (StoredViews, ViewGeometry, cached_views, crop_view, measure_view_cost,
                           teacher_views)
from .teacher import Teacher

log = logging.getLogger("tlearn")

CACHED_PRESETS = ("none", "flip")  # augmentation under which hinton's teacher outputs are computed once, up front


def live_teacher(cfg: DistillConfig) -> bool:
    """The teacher judges every batch: augmented, mixed or hinted batches without stored views."""
    return not cfg.stored_views and (cfg.augment not in CACHED_PRESETS or cfg.feature_weight > 0 or cfg.consistent)


def loading_seconds(decoded: DecodedImages, size: int, items: int = 16) -> float:
    """Seconds per training item spent reading its square and cutting a crop at `size` (the data side of a step)."""
    n = min(items, len(decoded))
    t0 = time.perf_counter()
    for k in range(n):
        crop_view(decoded.square(k), (0, 0, decoded.images.shape[1], decoded.images.shape[2]), False, size)
    return (time.perf_counter() - t0) / max(n, 1)


@dataclass
class Schedule:
    decoded: DecodedImages  # training (+ unlabeled) images at the crop view
    decode_seconds: float
    views: StoredViews | None = None
    plan: DistillPlan | None = None
    deadline: float | None = None  # time.perf_counter() by which training must end
    alone_seconds: float | None = None  # the student alone's share of the budget

    def seconds_left(self) -> float | None:
        return None if self.deadline is None else max(self.deadline - time.perf_counter(), 1.0)

    def distill_epochs_after(self, alone_history: list[dict], epochs: int) -> int:
        """The distilled student's epochs once the student alone has trained: its measured epoch seconds against
        the estimate calibrate the distilled epochs' estimate, and the epochs shrink if they no longer fit before
        the deadline (never grow: both students keep the same schedule where the budget allows)."""
        if self.plan is None or not self.plan.estimate.get("alone") or not alone_history:
            return epochs
        measured = sum(row["seconds"] for row in alone_history) / len(alone_history)
        factor = max(1.0, measured / (self.plan.estimate["alone"] / max(self.plan.epochs, 1)))
        per_epoch = self.plan.estimate["distill"] / max(self.plan.epochs, 1) * factor
        fitting = int(self.seconds_left() / (per_epoch * SAFETY))
        if fitting < epochs:
            log.info("the student alone's epochs took %.2fx their estimate: %d distilled epoch(s) fit before the "
                     "deadline rather than %d", factor, max(fitting, 1), epochs)
        return max(1, min(epochs, fitting))


def settle_schedule(cfg: DistillConfig, teacher: Teacher, student: TransferModel, scfg: DataConfig,
                    view: DataConfig, splits: DataSplits, unlabeled: list[Sample], cache_dir, start: float,
                    num_workers: int | None) -> Schedule:
    """Decode, plan (--budget-minutes; cfg.epochs and cfg.views are set to the plan) and store the views (--views).
    start: time.perf_counter() when the run began, which the budget counts from."""
    t0 = time.perf_counter()
    workers = default_train_workers() if num_workers is None else num_workers
    if unlabeled:  # the pool gets its own cache entry: decoded once, whatever the split and the seed
        decoded = decode_joined([splits.train, unlabeled], view, cache_dir, num_workers=workers,
                                progress=cfg.progress, desc="decode train + unlabeled")
    else:
        decoded = decode_images(splits.train, view, cache_dir, num_workers=workers, progress=cfg.progress,
                                desc="decode train")
    schedule = Schedule(decoded=decoded, decode_seconds=time.perf_counter() - t0)
    classes = len(teacher.classes)
    geometry = stored = chosen = None
    if cfg.stored_views:
        geometry = ViewGeometry.for_preset(cfg.augment, view, decoded.images.shape[1])
        stored = cached_views(teacher.model, teacher.data_config, decoded, geometry, classes, cache_dir,
                              cfg.precision)
    if cfg.budget_minutes:
        wanted = cfg.views if cfg.views is not None else None
        needs_views = cfg.stored_views and (stored is None or wanted is None or stored.k < wanted)
        view_seconds = 0.0
        if needs_views:
            if stored is not None and "seconds_per_view" in stored.checks:
                view_seconds = float(stored.checks["seconds_per_view"])
            else:
                chosen = measure_view_cost(teacher.model, teacher.data_config, decoded, geometry, cfg.precision,
                                           cfg.batch_size)
                view_seconds = float(chosen[1]["seconds_per_view"])
        train_s, eval_s, teacher_s = measure_costs(student, scfg.training_size, teacher.model,
                                                   teacher.data_config.training_size, cfg.train_batch_size)
        train_s += loading_seconds(decoded, scfg.training_size)
        costs = DistillCosts(student_train=train_s, student_eval=eval_s, teacher_eval=teacher_s,
                             teacher_view=view_seconds)
        work = Workload(train_images=len(decoded), labelled_images=len(splits.train), val_images=len(splits.val),
                        final_images=len(splits.val) + len(splits.test), views_stored=stored.k if stored else 0,
                        live_teacher=live_teacher(cfg), alone=bool(cfg.student_alone),
                        latency_repeats=cfg.latency_repeats)
        budget = 60.0 * cfg.budget_minutes
        plan = schedule.plan = plan_schedule(budget, time.perf_counter() - start, costs, work, epochs=cfg.epochs,
                                             views=wanted, stored=cfg.stored_views)
        cfg.epochs = plan.epochs
        if cfg.stored_views:
            cfg.views = plan.views
        schedule.deadline = start + budget - plan.estimate["final"]
        schedule.alone_seconds = plan.estimate["alone"] * ALONE_SLACK if cfg.student_alone else None
        log.info("budget %.1f min: %d epoch(s)%s planned from measured costs (s per image: student step %.4f, "
                 "teacher %.4f%s); estimate %s s", cfg.budget_minutes, plan.epochs,
                 f", {plan.views} stored view(s) per image" if cfg.stored_views else "", train_s, teacher_s,
                 f", stored view {view_seconds:.4f}" if needs_views else "",
                 ", ".join(f"{k} {v:.0f}" for k, v in plan.estimate.items()))
        if not plan.fits:
            log.warning("--budget-minutes %g is too short even for %d epoch(s)%s (estimate %.0f s after %.0f s "
                        "spent); training them anyway and stopping at the deadline.", cfg.budget_minutes,
                        plan.epochs, f" and {plan.views} view(s)" if cfg.stored_views else "",
                        sum(plan.estimate.values()), plan.spent_seconds)
    elif cfg.stored_views and cfg.views is None:
        cfg.views = planned_views(cfg.epochs)
    if cfg.stored_views:
        schedule.views = teacher_views(teacher.model, teacher.data_config, decoded, geometry, cfg.views, classes,
                                       cache_dir, precision=cfg.precision, batch_size=cfg.batch_size,
                                       progress=cfg.progress, chosen=chosen)
    return schedule
