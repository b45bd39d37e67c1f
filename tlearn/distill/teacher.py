"""The teacher: any trained tlearn run (a backbone + head), and its outputs cached on disk.

Teacher logits for un-augmented images are computed once and kept in the feature cache (outside run
directories), keyed by a fingerprint of the whole teacher model's weights, its input transform, the
precision and each image file's sha256: a second distillation from the same teacher reads them back.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..backbones.model import TransferModel
from ..data.layout import Sample
from ..data.transforms import DataConfig
from ..errors import TlearnError
from ..features.extract import FeatureSet, extract_features
from ..runs.run import Run


@dataclass
class Teacher:
    """A trained model that teaches: outputs over `classes` for images prepared by `data_config`."""

    model: TransferModel
    data_config: DataConfig
    classes: list[str]
    source: str = "model"  # the run directory, when it came from one

    @classmethod
    def from_run(cls, run: str | Path | Run) -> "Teacher":
        try:
            run = run if isinstance(run, Run) else Run(run)
        except TlearnError as exc:
            raise TlearnError(f"--teacher: {exc} Train a teacher first, e.g. `tlearn fit DATA --out TEACHER`.") \
                from None
        return cls(model=run.model.eval(), data_config=run.data_config, classes=list(run.classes),
                   source=str(run.path))

    def check_classes(self, classes: list[str], data: str) -> None:
        """The student learns the teacher's outputs one-to-one, so both must use the same classes in order."""
        if list(classes) != self.classes:
            raise TlearnError(
                f"the teacher {self.source} was trained on classes {self.classes}, but {data} has {list(classes)}; "
                "distil on data with the same class folders as the teacher's."
            )

    def logits(self, samples: Sequence[Sample], *, precision: str = "auto", device: str = "auto",
               batch_size: int = 64, cache_dir: str | Path | None = None, use_cache: bool = True,
               num_workers: int | None = None, progress: bool = True, desc: str = "teacher outputs") -> FeatureSet:
        """Teacher logits (one row per decodable sample, in FeatureSet.features), cached on disk."""
        fs = extract_features(self.model, samples, self.data_config, precision=precision, device=device,
                              batch_size=batch_size, cache_dir=cache_dir, use_cache=use_cache,
                              num_workers=num_workers, progress=progress, desc=desc)
        self.model.cpu()
        return fs

    @torch.inference_mode()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Logits for a batch already prepared at the teacher's input size (e.g. the student's augmented batch)."""
        return self.model(images)


def probabilities(logits: np.ndarray) -> np.ndarray:
    """softmax in float64, rows sum to one."""
    return torch.softmax(torch.from_numpy(np.asarray(logits)).double(), dim=1).numpy()
