"""Knowledge distillation: a large teacher run teaches a small, fast student (Hinton et al. 2015).

distill(data, teacher, out, **options) -> Run   the student run directory (metrics.json has a distillation block)
DistillConfig                                   every setting of a distillation, saved in RUN/config.yaml
distillation_loss / DistillationLoss            the KD loss, and its hook for the tlearn.train loop
Teacher                                         a trained run that teaches; its outputs cached on disk
compare_costs                                   parameters, MB and CPU ms per image of models side by side

The names are imported on first use (PEP 562): the CLI reads DistillConfig without importing torch.
"""
from __future__ import annotations

import importlib

from ..constants import ALONE_DIR
from .config import DistillConfig

_LAZY = {
    "distill": ".distillation", "distill_config": ".distillation", "unlabeled_samples": ".distillation",
    "DistillationLoss": ".loss", "distillation_loss": ".loss", "soft_loss": ".loss", "soft_targets": ".loss",
    "compare_costs": ".measure", "compare_latency": ".measure", "Teacher": ".teacher",
}

__all__ = ["DistillConfig", "ALONE_DIR", *_LAZY]


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'tlearn.distill' has no attribute {name!r}")
    return getattr(importlib.import_module(_LAZY[name], __name__), name)
