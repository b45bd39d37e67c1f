"""Heatmaps for images with a trained model, batch by batch (a folder of thousands stays in bounded memory).

Images are taken as people hold them (tlearn.runtime.image_inputs): paths, folders, PIL images, numpy arrays, or
lists mixing them; an image in memory is explained as its PNG file would be."""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..backbones.model import TransferModel
from ..data.images import UnreadableImage
from ..data.layout import SkippedFile, list_images
from ..data.transforms import DataConfig
from ..runtime import ImageError, ImageInput, image_inputs
from .cam import DEFAULT_METHOD, Explainer, Explanation
from .images import EvalPreprocess

DEFAULT_BATCH = 8  # images per forward + backward pass; activations and gradients are kept for the whole batch


@dataclass
class ImageExplanation:
    """One image: what the model saw, its probabilities, and the maps (the predicted class first)."""

    path: str  # the source: the file, or "<array 0>", "<PIL.Image 1>" (the position in the list given)
    crop: Image.Image
    probabilities: np.ndarray  # (K,)
    maps: list[Explanation]

    @property
    def predicted(self) -> int:
        return int(self.probabilities.argmax())

    @property
    def source(self) -> str:
        """The image's name, as Prediction.source names it."""
        return self.path


def _expand(path: Path) -> list[Path]:
    """A folder -> its images; a file stays one path (an unreadable one is skipped, with the reason)."""
    return list_images(path) if path.is_dir() else [path]


def _prepare(prep: EvalPreprocess, item: ImageInput):
    if item.path is not None:
        return prep.from_path(item.path)
    try:
        return prep.from_image(item.decode(prep.cfg.resize_size, dicom_window=prep.cfg.dicom_window))
    except ImageError as exc:
        raise UnreadableImage(str(exc)) from None


def explain_images(model: TransferModel, data_config: DataConfig, images, *,
                  method: str = DEFAULT_METHOD, classes: Sequence[int] = (), device: str = "cpu",
                  batch_size: int = DEFAULT_BATCH, skipped: list[SkippedFile] | None = None
                  ) -> Iterator[ImageExplanation]:
    """For each readable image: the predicted class's map, then one per class index in `classes` (each class
    once). images: a path, a folder, a PIL image, a numpy array (as Run.predict takes them) or a list of them.
    Unreadable images are appended to `skipped` with the reason."""
    import torch

    prep = EvalPreprocess(data_config)
    with Explainer(model, method, device) as explainer:
        pending: list[tuple[str, object]] = []

        def flush() -> Iterator[ImageExplanation]:
            batch = torch.stack([p.tensor for _, p in pending])
            probs, predicted = explainer.explain(batch)
            extra = [[] for _ in pending]
            for k in dict.fromkeys(classes):
                todo = [i for i, e in enumerate(predicted) if e.class_index != k]
                if todo:
                    _, maps = explainer.explain(batch[todo], [k] * len(todo))
                    for i, m in zip(todo, maps):
                        extra[i].append(m)
            for (path, prepared), p, first, more in zip(pending, probs, predicted, extra):
                yield ImageExplanation(path, prepared.crop, p, [first, *more])
            pending.clear()

        for item in image_inputs(images, expand=_expand):
            try:
                pending.append((item.source, _prepare(prep, item)))
            except UnreadableImage as exc:
                if skipped is not None:
                    skipped.append(SkippedFile(item.source, str(exc)))
                continue
            if len(pending) >= batch_size:
                yield from flush()
        if pending:
            yield from flush()


explain_files = explain_images  # the earlier name, for callers that pass files
