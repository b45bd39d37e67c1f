"""tlearn.fit with every option in its signature, so IDEs complete them and help(tlearn.fit) lists them.

Each keyword is the FitConfig field of the same name (tlearn.config: one place for defaults, checks and help);
tests/test_api.py checks that the two never drift apart. Importing this module does not import torch.
"""
from __future__ import annotations

from dataclasses import MISSING, fields
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from .config import FitConfig
from .constants import (DEFAULT_BACKBONE, DEFAULT_BATCH_SIZE, DEFAULT_GRAD_CLIP, DEFAULT_RANK_METRIC, DEFAULT_STRATEGY,
                        DEFAULT_TRAIN_BATCH_SIZE, DEFAULT_VAL_FRACTION, DEFAULT_WEIGHT_DECAY)
from .option_names import refuse_unknown

if TYPE_CHECKING:
    from .runs.run import Run

__all__ = ["fit"]


def fit(
    data: str | Path,
    out: str | Path,
    *,
    strategy: str = DEFAULT_STRATEGY,
    finetune_recipe: str = "auto",
    backbone: str = DEFAULT_BACKBONE,
    weights: str | None = None,
    epochs: int | None = None,
    seed: int = 0,
    # data and runtime
    val_fraction: float = DEFAULT_VAL_FRACTION,
    group_by: str | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    precision: str = "auto",
    device: str = "auto",
    cache_dir: str | None = None,
    num_workers: int | None = None,
    progress: bool = True,
    dicom_window: str = "auto",
    overwrite: bool = False,
    track: str | None = None,
    tracking_uri: str | None = None,
    weights_sha256: str | None = None,
    rank_sources: str | None = None,
    rank_metric: str = DEFAULT_RANK_METRIC,
    class_weights: str | None = None,
    empty_label: str | None = None,
    unlabeled: str | None = None,
    strict: bool = False,
    # training (finetune, gradual, lp-ft, scratch); None: the strategy's own default
    weight_decay: float = DEFAULT_WEIGHT_DECAY,
    train_batch_size: int = DEFAULT_TRAIN_BATCH_SIZE,
    ema: float | None = None,
    head_epochs: int | None = None,
    lr: float | None = None,
    lr_ratio: float | None = None,
    optimizer: str | None = None,
    augment: str | None = None,
    image_size: int | None = None,
    train_size: int | None = None,
    unfreeze_every: int = 1,
    freeze_bn: bool | None = None,
    sampler: str | None = None,
    label_smoothing: float | None = None,
    grad_clip: float | None = DEFAULT_GRAD_CLIP,
    l2_sp: float | None = None,
    accumulation: int = 1,
    memory_budget: float | None = None,
    patience: int | None = None,
    max_seconds: float | None = None,
    resume: bool = False,
    budget_minutes: float | None = None,
    callbacks: Sequence = (),
    **unknown,
) -> Run | None:
    """Train a classifier on DATA with a transfer strategy, write the run directory OUT and return it as a Run
    (None in a torchrun worker other than rank 0, which writes the run).

    Every keyword is the FitConfig option of that name, with the same default and check (`tlearn fit --help`
    shows them as flags). A misspelt keyword is refused with the closest option's name. callbacks: objects with
    on_run_start(config), on_epoch_end(row) and on_run_end(run_dir, metrics) (tlearn.tracking.Callback), told as
    the run goes, beside the trackers `track` names.
    """
    refuse_unknown(unknown, _OPTIONS, "tlearn.fit")
    options = {k: v for k, v in locals().items() if k in _OPTIONS}
    from .fitting import fit_config  # torch loads here, not on `import tlearn.api`

    return fit_config(FitConfig(**{**options, "data": str(data), "out": str(out)}), callbacks)


_OPTIONS = frozenset(f.name for f in fields(FitConfig))


def _options_doc() -> str:
    """One line per option, from FitConfig's field metadata (the help `tlearn fit --help` prints)."""
    lines = ["", "    Options (FitConfig fields):"]
    for f in fields(FitConfig):
        if f.name in ("data", "out"):
            continue
        default = "" if f.default is MISSING else f" = {f.default!r}"
        help_text = f.metadata.get("help") or ""
        lines.append(f"        {f.name}{default}" + (f": {help_text}" if help_text else ""))
    return "\n".join(lines) + "\n"


fit.__doc__ = (fit.__doc__ or "") + _options_doc()
