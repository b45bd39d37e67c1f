"""The most confidently wrong predictions, with small embedded JPEG thumbnails of the images."""
from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from pathlib import Path

from ..data.images import UnreadableImage, load_rgb
from ..evaluate.predictions import PredictionTable

THUMBNAIL_PX = 128


@dataclass
class GalleryItem:
    split: str
    path: str
    true: str
    predicted: str
    probability: float  # of the predicted class
    true_probability: float
    thumbnail: str | None  # data: URI, or None when the image cannot be read any more
    missing_reason: str | None = None


def thumbnail_uri(path: str | Path, size: int = THUMBNAIL_PX) -> str:
    """A small JPEG of the image as a data: URI; raises UnreadableImage if the file is gone or broken."""
    img = load_rgb(path, draft_size=size)
    img.thumbnail((size, size))
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=80)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def confidently_wrong(table: PredictionTable, limit: int = 12) -> list[GalleryItem]:
    """The wrong predictions of a split, most confident first, each with a thumbnail when the image still exists."""
    labelled = table.labelled
    predicted, confidence = labelled.predicted, labelled.confidence
    wrong = [i for i in range(len(labelled)) if predicted[i] != labelled.labels[i]]
    wrong.sort(key=lambda i: -confidence[i])
    items = []
    for i in wrong[:limit]:
        try:
            thumb, reason = thumbnail_uri(labelled.paths[i]), None
        except UnreadableImage as exc:
            thumb, reason = None, str(exc)
        items.append(GalleryItem(
            split=table.split, path=labelled.paths[i], true=table.classes[labelled.labels[i]],
            predicted=table.classes[predicted[i]], probability=float(confidence[i]),
            true_probability=float(labelled.probs[i, labelled.labels[i]]), thumbnail=thumb, missing_reason=reason,
        ))
    return items
