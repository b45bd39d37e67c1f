"""The transfer study: does transfer need fewer labels, converge faster and reach higher accuracy than scratch?

    from tlearn.study import StudyConfig, run_study
    result = run_study(StudyConfig("data/", "study/", strategies=["scratch", "linear-probe"], seeds=2))
    result.summary["labels_saved"], result.report
"""
from .config import DEFAULT_FRACTIONS, DEFAULT_STRATEGIES, StudyConfig

__all__ = ["StudyConfig", "StudyResult", "run_study", "finish_study", "nested_fractions", "summarize",
           "DEFINITIONS", "DEFAULT_STRATEGIES", "DEFAULT_FRACTIONS"]

_LAZY = {"nested_fractions": ".fractions", "StudyResult": ".runner", "finish_study": ".runner",
         "run_study": ".runner", "DEFINITIONS": ".summary", "summarize": ".summary"}


def __getattr__(name: str):
    """The study's machinery, imported on first use: the config stays torch-free for `tlearn study --help`."""
    if name not in _LAZY:
        raise AttributeError(f"module 'tlearn.study' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(_LAZY[name], __name__), name)
    globals()[name] = value
    return value
