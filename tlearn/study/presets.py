"""Ready-made studies: the short one `tlearn demo` runs on its built-in images."""
from __future__ import annotations

from pathlib import Path

from .config import StudyConfig
from .runner import StudyResult, run_study

# A few minutes on 2 CPU cores; finetune is left out (slow, poor at 64 px: docs/results.md#the-demos-study)
DEMO_STUDY = {"strategies": ["scratch", "linear-probe"], "fractions": [0.05, 0.2, 1.0], "seeds": 1,
              "fit": {"image_size": 64, "epochs": 4}}


def demo_study_config(data: str | Path, out: str | Path, progress: bool = False) -> StudyConfig:
    preset = DEMO_STUDY
    return StudyConfig(str(data), str(out), strategies=list(preset["strategies"]),
                       fractions=list(preset["fractions"]), seeds=preset["seeds"],
                       fit={**preset["fit"], "progress": progress})


def run_demo_study(data: str | Path, out: str | Path, progress: bool = False) -> StudyResult:
    """scratch vs linear-probe on the demo images; re-running keeps finished cells."""
    return run_study(demo_study_config(data, out, progress))
