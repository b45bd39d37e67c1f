"""The transfer study: does transfer need fewer labels, converge faster and reach higher accuracy than scratch?

    from tlearn.study import StudyConfig, run_study
    result = run_study(StudyConfig("data/", "study/", strategies=["scratch", "linear-probe"], seeds=2))
    result.summary["labels_saved"], result.report
"""
from .config import DEFAULT_FRACTIONS, DEFAULT_STRATEGIES, StudyConfig
from .fractions import nested_fractions
from .runner import StudyResult, finish_study, run_study
from .summary import DEFINITIONS, summarize

__all__ = ["StudyConfig", "StudyResult", "run_study", "finish_study", "nested_fractions", "summarize",
           "DEFINITIONS", "DEFAULT_STRATEGIES", "DEFAULT_FRACTIONS"]
