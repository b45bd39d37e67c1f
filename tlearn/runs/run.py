"""A finished run directory read back: its config, classes, metrics and model, ready to predict or evaluate.

Reading goes through tlearn.runs.layout, which refuses a run that is not complete.
"""
from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..backbones.model import BackboneInfo, TransferModel, check_recorded, load_transfer_model
from ..data.layout import Sample, SkippedFile, list_images, read_labelled_folder
from ..checks import check_save_as
from ..errors import TlearnError
from ..evaluate.intervals import add_intervals, add_multilabel_intervals
from ..data.multilabel import label_matrix, read_multilabel_folder
from ..evaluate.metrics import classification_metrics
from ..evaluate.multilabel import multilabel_metrics
from ..evaluate.predict import predict_samples
from ..features.sharded import Extraction, fill_cache
from ..runtime import ImageInput, Prediction, image_inputs, predictions, to_rgb
from ..train.distributed import dist_env
from . import layout
from .sections import DataSection, FitSection, RunSections, StrategySection, TaskSection


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
        check_recorded(self.backbone_info, self.path / layout.CONFIG)
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
                progress: bool = False, tta: str | None = None, k: int = 5
                ) -> tuple[list[Prediction], list[SkippedFile]]:
        """Predictions for images as people hold them: a path (str or Path), a folder (its images, recursively),
        a PIL image, a numpy array (H x W or H x W x C, C in 1/3/4; uint8, or float in [0, 1] meaning 0..255),
        bytes of an image file, or a list mixing them; and the images that could not be read, with the reason.

        Each Prediction names its source (the path, or "<array 0>", "<PIL.Image 1>": the position in the list)
        and holds the top-k classes. An image in memory gives the prediction its PNG file would give.
        tta: None, "flip" or "crops": average the probabilities over flipped / cropped views (see evaluate.tta).
        """
        with _as_files(image_inputs(images, expand=list_images)) as (paths, sources):
            samples = [Sample(p, -1) for p in paths]
            probs, fs = self._predict(samples, precision, batch_size, progress, use_cache=False, tta=tta)
            names = [sources[str(s.path)] for s in fs.samples]
            skipped = [SkippedFile(sources.get(s.path, s.path), s.reason) for s in fs.skipped]
        thresholds = self.thresholds if self.multilabel else None
        return predictions(probs, self.classes, names, k, thresholds), skipped

    def evaluate(self, split: str | Path, batch_size: int = 64, precision: str | None = None,
                 progress: bool = True, save_as: str | None = None, tta: str | None = None) -> dict:
        """Metrics, with bootstrap intervals, on a labelled class tree (or CSV) whose classes are among the run's
        classes (tta as in predict). Groups come from a manifest's group column or the run's --group-by; a
        multi-label run is scored at its own thresholds (chosen when it was trained)."""
        if save_as is not None:
            try:
                check_save_as(save_as)
            except ValueError as exc:
                raise TlearnError(str(exc)) from None
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


# Modes a PNG file keeps as they are; an image in another mode is saved as the RGB that decoding gives it.
_PNG_MODES = ("1", "L", "LA", "P", "RGB", "RGBA", "I;16")


@contextmanager
def _as_files(items: list[ImageInput]) -> Iterator[tuple[list[Path], dict[str, str]]]:
    """(files, {file: source}) for predict: paths as given; images in memory and bytes written losslessly (PNG)
    to a temporary folder, removed afterwards, so they are decoded, resized, batched and test-time augmented
    exactly as the same image in a file is."""
    if all(item.path is not None for item in items):
        yield [item.path for item in items], {str(item.path): item.source for item in items}
        return
    with tempfile.TemporaryDirectory(prefix="tlearn-predict-") as tmp:
        paths, sources = [], {}
        for i, item in enumerate(items):
            path = item.path
            if path is None:
                path = Path(tmp) / f"{i:06d}"
                if item.image is None:
                    path.write_bytes(item.data)
                else:
                    image = item.image if item.image.mode in _PNG_MODES else to_rgb(item.image)
                    path = path.with_suffix(".png")
                    image.save(path, format="PNG", compress_level=1)
            paths.append(path)
            sources[str(path)] = item.source
        yield paths, sources


def load_run(path: str | Path) -> Run:
    return Run(path)
