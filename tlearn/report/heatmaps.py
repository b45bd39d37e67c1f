"""The report's "Where the model looks" gallery: heatmaps of the most confidently wrong val/test images (for the
predicted and the true class) and of the most confident correct ones per class.

Bounded: at most `limit` images and REPORT_HEATMAP_SECONDS of work; a run whose model or images cannot be
read gets a note instead, never a failed report. Torch and grad-cam load only when there is something to draw.
"""
from __future__ import annotations

import importlib.util
import logging
import time
from dataclasses import dataclass, field

import numpy as np

from ..constants import REPORT_HEATMAP_SECONDS
from ..explain.methods import DEFAULT_METHOD
from ..evaluate.predictions import PredictionTable
from .contents import RunContents

log = logging.getLogger("tlearn")

WRONG_PER_SPLIT = 6
CORRECT_PER_CLASS = 2
THUMB_PX = 128
BATCH = 8


@dataclass
class Pick:
    """An image chosen for the gallery, by its row in a split's predictions."""

    split: str
    path: str
    true: int
    predicted: int
    probability: float  # of the predicted class

    @property
    def correct(self) -> bool:
        return self.true == self.predicted


@dataclass
class HeatmapCard:
    pick: Pick
    true: str
    predicted: str
    image: str  # data: URI of the eval crop
    maps: list[tuple[str, str]]  # (caption, data: URI): the predicted class, then the true one when wrong


@dataclass
class HeatmapGallery:
    wrong: list[HeatmapCard] = field(default_factory=list)
    correct: list[HeatmapCard] = field(default_factory=list)
    method: str = DEFAULT_METHOD
    layer: str = ""
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    limit: int = 0


def pick_images(predictions: dict[str, PredictionTable], limit: int, n_classes: int) -> tuple[list[Pick], list[Pick]]:
    """(confidently wrong: up to WRONG_PER_SPLIT per val/test split, most confident first; correct: the most
    confident up to CORRECT_PER_CLASS per class on test, else val), at most `limit` images in all, wrong first."""
    splits = [s for s in ("val", "test") if s in predictions and len(predictions[s].labelled)]
    wrong: list[Pick] = []
    for split in splits:
        t = predictions[split].labelled
        order = np.argsort(-t.confidence, kind="stable")
        rows = [i for i in order if t.predicted[i] != t.labels[i]][:WRONG_PER_SPLIT]
        wrong += [Pick(split, t.paths[i], int(t.labels[i]), int(t.predicted[i]), float(t.confidence[i]))
                  for i in rows]
    wrong = wrong[:limit]
    correct: list[Pick] = []
    room = limit - len(wrong)
    if splits and room > 0:
        split = "test" if "test" in splits else "val"
        t = predictions[split].labelled
        per_class = max(1, min(CORRECT_PER_CLASS, room // max(n_classes, 1)))
        order = np.argsort(-t.confidence, kind="stable")
        for k in range(n_classes):
            rows = [i for i in order if t.labels[i] == k and t.predicted[i] == k][:per_class]
            correct += [Pick(split, t.paths[i], k, k, float(t.confidence[i])) for i in rows]
        correct = correct[:room]
    return wrong, correct


def heatmap_gallery(rc: RunContents, limit: int, method: str = DEFAULT_METHOD) -> HeatmapGallery | None:
    """The gallery for the report; None when limit is 0 (the section is left out)."""
    if limit <= 0:
        return None
    gallery = HeatmapGallery(method=method, limit=limit)
    wrong, correct = pick_images(rc.predictions, limit, len(rc.classes))
    if not wrong and not correct:
        gallery.notes.append("No labelled val or test predictions saved: nothing to draw.")
        return gallery
    if importlib.util.find_spec("pytorch_grad_cam") is None:  # an optional extra: the report says how to get it, the log stays quiet
        gallery.notes.append("Heatmaps need the grad-cam package: pip install 'tlearn[explain]', then "
                             "`tlearn report RUN`.")
        return gallery
    start = time.perf_counter()
    try:
        _draw(rc, gallery, wrong, correct, method, start)
    except Exception as exc:  # noqa: BLE001 - a report is written for any run; the gallery is optional
        log.warning("report: no heatmaps for %s (%s: %s)", rc.path, type(exc).__name__, exc)
        gallery.notes.append(f"Heatmaps are not available: {type(exc).__name__}: {exc}")
    gallery.seconds = time.perf_counter() - start
    return gallery


def _draw(rc: RunContents, gallery: HeatmapGallery, wrong: list[Pick], correct: list[Pick], method: str,
          start: float) -> None:
    import torch

    from ..data.images import UnreadableImage
    from ..explain.cam import Explainer, require_grad_cam
    from ..explain.images import EvalPreprocess
    from ..explain.overlay import data_uri, enlarged, overlay
    from ..runs.run import Run

    require_grad_cam()
    run = Run(rc.path)
    prep = EvalPreprocess(run.data_config)
    missing = 0
    with Explainer(run.model, method, "cpu") as explainer:
        gallery.layer = explainer.target.name
        for picks, cards in ((wrong, gallery.wrong), (correct, gallery.correct)):
            for b in range(0, len(picks), BATCH):
                if time.perf_counter() - start > REPORT_HEATMAP_SECONDS:
                    gallery.notes.append(f"Stopped after {REPORT_HEATMAP_SECONDS:.0f} s; `tlearn explain` draws more.")
                    return
                ready = []
                for p in picks[b:b + BATCH]:
                    try:
                        ready.append((p, prep.from_path(p.path)))
                    except UnreadableImage:
                        missing += 1
                if not ready:
                    continue
                batch = torch.stack([im.tensor for _, im in ready])
                _, by_pred = explainer.explain(batch, [p.predicted for p, _ in ready])
                wrong_rows = [i for i, (p, _) in enumerate(ready) if not p.correct]
                by_true = dict(zip(wrong_rows, explainer.explain(batch[wrong_rows], [ready[i][0].true
                                                                                     for i in wrong_rows])[1]
                                   if wrong_rows else []))
                for i, (p, im) in enumerate(ready):
                    maps = [(f"predicted {rc.classes[p.predicted]}", data_uri(overlay(im.crop, by_pred[i].heatmap,
                                                                                      THUMB_PX)))]
                    if i in by_true:
                        maps.append((f"true {rc.classes[p.true]}", data_uri(overlay(im.crop, by_true[i].heatmap,
                                                                                    THUMB_PX))))
                    cards.append(HeatmapCard(p, rc.classes[p.true], rc.classes[p.predicted],
                                             data_uri(enlarged(im.crop, THUMB_PX)), maps))
    if missing:
        gallery.notes.append(f"{missing} chosen image(s) could not be read any more and are left out.")
