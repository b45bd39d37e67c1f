"""Incremental learning: teach a trained run new classes, or more images of its classes, without retraining
from scratch (`tlearn extend`), and measure it on any labelled folder (`tlearn incremental`).

analytic   closed-form head from summed feature statistics (frozen backbone; no old images needed)
lwf        Learning without Forgetting + L2-SP towards the parent (fine-tuned backbone), optional replay
naive      fine-tuning on the new data alone (the lower bound)
"""
from .config import ExtendConfig, IncrementalConfig

__all__ = ["AnalyticHead", "ExtendConfig", "IncrementalConfig", "extend", "solve_head"]


def __getattr__(name: str):
    """AnalyticHead and solve_head, imported on first use (the configs stay torch-free for `--help`)."""
    if name in ("AnalyticHead", "solve_head"):
        from . import analytic

        return getattr(analytic, name)
    raise AttributeError(f"module 'tlearn.incremental' has no attribute {name!r}")


def extend(run, data, out, **options):
    """tlearn.incremental.extension.extend, imported on use (it imports torch)."""
    from .extension import extend as _extend

    return _extend(run, data, out, **options)
