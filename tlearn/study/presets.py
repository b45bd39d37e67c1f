"""Ready-made studies: the short one `tlearn demo` runs on its built-in images."""
from __future__ import annotations

import math
from pathlib import Path

from .config import StudyConfig
from .runner import StudyResult, run_study

# A few minutes on 2 CPU cores; finetune is left out (slow, poor at 64 px: docs/results.md#the-demos-study)
DEMO_STUDY = {"strategies": ["scratch", "linear-probe"], "fractions": [0.05, 0.2, 1.0], "seeds": 1,
              "fit": {"image_size": 64, "epochs": 4}}
# scratch needs optimizer steps, not epochs: a small source gets the steps 4 epochs of Fashion-MNIST's 600
# training images give (about 75 at batch 32), else it stays at chance
DEMO_MIN_STEPS = 75
DEMO_MAX_EPOCHS = 30  # a handful of images per class (tests, --per-class) stays quick


def demo_epochs(train_images: int | None, batch_size: int = 32) -> int:
    """Epochs of the demo's study: the preset's, or more when the training set is small."""
    epochs = DEMO_STUDY["fit"]["epochs"]
    if not train_images:
        return epochs
    return min(DEMO_MAX_EPOCHS, max(epochs, math.ceil(DEMO_MIN_STEPS / math.ceil(train_images / batch_size))))


def demo_study_config(data: str | Path, out: str | Path, progress: bool = False,
                      train_images: int | None = None) -> StudyConfig:
    preset = DEMO_STUDY
    return StudyConfig(str(data), str(out), strategies=list(preset["strategies"]),
                       fractions=list(preset["fractions"]), seeds=preset["seeds"],
                       fit={**preset["fit"], "epochs": demo_epochs(train_images), "progress": progress})


def run_demo_study(data: str | Path, out: str | Path, progress: bool = False,
                   train_images: int | None = None) -> StudyResult:
    """scratch vs linear-probe on the demo images; re-running keeps finished cells."""
    return run_study(demo_study_config(data, out, progress, train_images))
