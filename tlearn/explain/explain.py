"""Heatmaps for image files with a trained model, batch by batch (a folder of thousands stays in bounded memory)."""
from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..backbones.model import TransferModel
from ..data.images import UnreadableImage
from ..data.layout import SkippedFile
from ..data.transforms import DataConfig
from .cam import DEFAULT_METHOD, Explainer, Explanation
from .images import EvalPreprocess

DEFAULT_BATCH = 8  # images per forward + backward pass; activations and gradients are kept for the whole batch


@dataclass
class ImageExplanation:
    """One image: what the model saw, its probabilities, and the maps (the predicted class first)."""

    path: str
    crop: Image.Image
    probabilities: np.ndarray  # (K,)
    maps: list[Explanation]

    @property
    def predicted(self) -> int:
        return int(self.probabilities.argmax())


def explain_files(model: TransferModel, data_config: DataConfig, paths: Iterable[str | Path], *,
                  method: str = DEFAULT_METHOD, classes: Sequence[int] = (), device: str = "cpu",
                  batch_size: int = DEFAULT_BATCH, skipped: list[SkippedFile] | None = None
                  ) -> Iterator[ImageExplanation]:
    """For each readable image: the predicted class's map, then one per class index in `classes` (each class
    once). Unreadable images are appended to `skipped` with the reason."""
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

        for path in paths:
            try:
                pending.append((str(path), prep.from_path(path)))
            except UnreadableImage as exc:
                if skipped is not None:
                    skipped.append(SkippedFile(str(path), str(exc)))
                continue
            if len(pending) >= batch_size:
                yield from flush()
        if pending:
            yield from flush()
