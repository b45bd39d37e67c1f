"""Incremental learning: teach a trained run new classes, or more images of its classes, without retraining
from scratch (`tlearn extend`), and measure it on any labelled folder (`tlearn incremental`).

analytic   closed-form head from summed feature statistics (frozen backbone; no old images needed)
lwf        Learning without Forgetting + L2-SP towards the parent (fine-tuned backbone), optional replay
naive      fine-tuning on the new data alone (the lower bound)
"""
from .analytic import AnalyticHead, solve_head
from .config import ExtendConfig

__all__ = ["AnalyticHead", "ExtendConfig", "extend", "solve_head"]


def extend(run, data, out, **options):
    """tlearn.incremental.extension.extend, imported on use (it imports torch)."""
    from .extension import extend as _extend

    return _extend(run, data, out, **options)
