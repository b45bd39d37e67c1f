"""A finished run directory read back: its config, classes, metrics and model, ready to predict or evaluate.

Reading goes through tlearn.runs.layout, which refuses a run that is not complete.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..backbones.model import BackboneInfo, TransferModel, load_transfer_model
from ..data.layout import Sample, SkippedFile, list_images, read_labelled_folder
from ..errors import TlearnError
from ..evaluate.intervals import add_intervals, add_multilabel_intervals
from ..data.multilabel import label_matrix, read_multilabel_folder
from ..evaluate.metrics import classification_metrics
from ..evaluate.multilabel import multilabel_metrics, positive_labels
from ..evaluate.predict import predict_samples
from ..features.sharded import Extraction, fill_cache
from ..train.distributed import dist_env
from . import layout
from .sections import DataSection, FitSection, RunSections, StrategySection, TaskSection


@dataclass
class Prediction:
    """label/probability: the top class and its probability. A multi-label run: labels are those at or above
    their thresholds, label is them '|'-joined ("" for none), probability the highest label probability."""

    path: str
    label: str
    probability: float
    probabilities: dict[str, float]
    labels: list[str] | None = None

    def to_dict(self) -> dict:
        out = {"path": self.path, "label": self.label, "probability": self.probability,
               "probabilities": self.probabilities}
        return out if self.labels is None else {**out, "labels": self.labels}


class Run:
    """A finished run directory: its config, classes, metrics and model, ready to predict."""

    def __init__(self, path: str | Path):
        self.path = layout.require_complete(path)
        self.config: dict = layout.read_config(self.path)
        self.sections: RunSections = RunSections.from_config(self.path, self.config)  # typed: fit, data, task, ...
        self.classes: list[str] = layout.read_classes(self.path)
        try:
            self.backbone_info = BackboneInfo.from_dict(self.sections.backbone.to_dict())
        except (KeyError, TypeError) as exc:
            raise TlearnError(f"{self.path / layout.CONFIG} has no usable backbone section ({exc!r}); train the "
                              "run again.") from None
        self._model: TransferModel | None = None

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r})"

    @property
    def metrics(self) -> dict:
        return layout.read_metrics(self.path)

    @property
    def fit(self) -> FitSection:
        """config.yaml's fit section: the options the run was trained with."""
        return self.sections.fit

    @property
    def strategy(self) -> StrategySection:
        return self.sections.strategy

    @property
    def data(self) -> DataSection:
        """Where the run's images came from and how they were split."""
        return self.sections.data

    @property
    def task(self) -> TaskSection:
        return self.sections.task

    @property
    def multilabel(self) -> bool:
        return self.sections.task.multilabel

    @property
    def thresholds(self) -> list[float] | None:
        """A multi-label run's per-label thresholds, in classes order (None for a single-label run)."""
        return layout.task_thresholds(self.config, self.classes)

    @property
    def data_config(self):
        return self.backbone_info.data_config

    @property
    def model(self) -> TransferModel:
        if self._model is None:
            model = load_transfer_model(self.path / layout.MODEL, self.backbone_info, len(self.classes))
            self._model = model.eval()
        return self._model

    def _predict(self, samples: list[Sample], precision: str | None, batch_size: int, progress: bool,
                 use_cache: bool = True, tta: str | None = None):
        fit = self.config.get("fit", {})
        if tta and self.multilabel:
            raise TlearnError("--tta is not available for multi-label runs yet; predict without it.")
        if tta:
            from ..evaluate.tta import predict_samples_tta

            return predict_samples_tta(
                self.model, samples, self.data_config, tta, device=fit.get("device", "auto"),
                precision=precision or self.config.get("precision", "auto"), batch_size=batch_size, progress=progress,
            )
        return predict_samples(
            self.model, samples, self.data_config, precision=precision or self.config.get("precision", "auto"),
            device=fit.get("device", "auto"), batch_size=batch_size, cache_dir=fit.get("cache_dir"),
            use_cache=use_cache, progress=progress, multilabel=self.multilabel,
        )

    def predict(self, images, batch_size: int = 32, precision: str | None = None,
                progress: bool = False, tta: str | None = None) -> tuple[list[Prediction], list[SkippedFile]]:
        """Label image files: a path, a folder (recursive) or a list of paths.

        tta: None, "flip" or "crops": average the probabilities over flipped / cropped views (see evaluate.tta).
        """
        paths = [p for item in ([images] if isinstance(images, (str, Path)) else images) for p in list_images(item)]
        samples = [Sample(p, -1) for p in paths]
        probs, fs = self._predict(samples, precision, batch_size, progress, use_cache=False, tta=tta)
        out = []
        if self.multilabel:
            for s, p, on in zip(fs.samples, probs, positive_labels(probs, self.classes, self.thresholds)):
                out.append(Prediction(str(s.path), "|".join(on), float(p.max()),
                                      {c: float(x) for c, x in zip(self.classes, p)}, on))
            return out, fs.skipped
        for s, p in zip(fs.samples, probs):
            k = int(p.argmax())
            out.append(Prediction(str(s.path), self.classes[k], float(p[k]),
                                  {c: float(x) for c, x in zip(self.classes, p)}))
        return out, fs.skipped

    def evaluate(self, split: str | Path, batch_size: int = 64, precision: str | None = None,
                 progress: bool = True, save_as: str | None = None, tta: str | None = None) -> dict:
        """Metrics, with bootstrap intervals, on a labelled class tree (or CSV) whose classes are among the run's
        classes (tta as in predict). Groups come from a manifest's group column or the run's --group-by; a
        multi-label run is scored at its own thresholds (chosen when it was trained)."""
        samples, skipped = self._labelled(split)
        probs, fs = self._predict(samples, precision, batch_size, progress, tta=tta)
        if self.multilabel:
            y = label_matrix(fs.samples, len(self.classes))
            metrics = add_multilabel_intervals(multilabel_metrics(y, probs, self.classes, self.thresholds), y, probs,
                                               [s.group for s in fs.samples])
        else:
            metrics = (add_intervals(classification_metrics(fs.labels, probs), fs.labels, probs,
                                     [s.group for s in fs.samples]) if len(fs.samples) else {"n": 0})
        metrics["skipped"] = [s.to_dict() for s in skipped + fs.skipped]
        if save_as:
            name = f"{layout.PREDICTIONS}/{save_as}.csv"
            layout.write_predictions(self.path / name, fs.samples, probs, self.classes, self.thresholds)
            layout.record_file(self.path, name)
        return metrics

    def _labelled(self, split: str | Path) -> tuple[list[Sample], list[SkippedFile]]:
        if self.multilabel:
            return read_multilabel_folder(split, self.classes, self.fit.empty_label), []
        return read_labelled_folder(split, self.classes, self.fit.group_by)

    def fill_features(self, split: str | Path, batch_size: int = 64, precision: str | None = None,
                      tta: str | None = None, progress: bool = True) -> bool:
        """Under torchrun, the features evaluate(split) reads, extracted over all processes into rank 0's cache
        (tlearn.features.sharded); whether this process goes on to evaluate (rank 0, or a single process)."""
        env = dist_env()
        if not env.enabled or tta:  # test-time views are not cached: rank 0 computes them alone
            return env.is_main
        job = Extraction(self.model.backbone, self._labelled(split)[0], self.data_config)
        return fill_cache([job], precision=precision or self.sections.precision, device=self.fit.device,
                          batch_size=batch_size, cache_dir=self.fit.cache_dir, progress=progress).is_main


def load_run(path: str | Path) -> Run:
    return Run(path)
