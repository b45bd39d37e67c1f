"""The report's "Where the model looks" gallery: heatmaps of the most confidently wrong val/test images (for the
predicted and the true class) and of the most confident correct ones per class.

Bounded: at most `limit` images and REPORT_HEATMAP_SECONDS of work; a run whose model or images cannot be
read gets a note instead, never a failed report. Torch and grad-cam load only when there is something to draw.
Each card is kept in the run's cache folder, keyed by the model's weights, the image's content, the eval
preprocessing, the method and the classes drawn: a report redrawn for the same model (a warm refit, `tlearn
report`) reuses them instead of running Grad-CAM again.
"""
from __future__ import annotations

import importlib.util
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..constants import REPORT_HEATMAP_SECONDS
from ..explain.methods import DEFAULT_METHOD
from ..evaluate.predictions import PredictionTable
from ..features.cache import default_cache_dir, module_fingerprint
from ..hashing import file_digest, stable_hash
from ..result_cache import BadEntry, load_result, save_result
from .contents import RunContents

log = logging.getLogger("tlearn")

WRONG_PER_SPLIT = 6
CORRECT_PER_CLASS = 2
THUMB_PX = 128
BATCH = 8
CARD_VERSION = 1  # of a cached card: bump when drawing changes
KIND = "heatmaps"


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


def _cache_dir(rc: RunContents) -> Path:
    """The cache folder the run was fitted with (its config), else the default one."""
    fit = rc.config.get("fit") if isinstance(rc.config, dict) else None
    folder = fit.get("cache_dir") if isinstance(fit, dict) else None
    return Path(folder).expanduser() if folder else default_cache_dir()


def card_key(model_fingerprint: str, data_config, method: str, pick: Pick) -> str | None:
    """The cache key of one card: the model's weights, the image's content, the eval preprocessing, the method
    and the classes drawn (the predicted one, and the true one when wrong); None when the file cannot be read."""
    try:
        digest = file_digest(pick.path)
    except OSError:
        return None
    return stable_hash({"version": CARD_VERSION, "model": model_fingerprint, "data": repr(data_config),
                        "method": method, "image": digest, "predicted": pick.predicted,
                        "true": None if pick.correct else pick.true, "px": THUMB_PX}, length=32)


def _card_entry(meta: dict, pick: Pick) -> dict:
    """A cached card's fields after checking them (BadEntry otherwise)."""
    uris = [meta["image"], meta["predicted"]] + ([] if pick.correct else [meta["true"]])
    if not all(isinstance(u, str) and u.startswith("data:image/") for u in uris) or not isinstance(meta["layer"], str):
        raise BadEntry("not a heatmap card")
    return meta


def _draw(rc: RunContents, gallery: HeatmapGallery, wrong: list[Pick], correct: list[Pick], method: str,
          start: float) -> None:
    from ..runs.run import Run

    run = Run(rc.path)
    cache_dir = _cache_dir(rc)
    fingerprint = module_fingerprint(run.model)
    picks = wrong + correct
    keys = [card_key(fingerprint, run.data_config, method, p) for p in picks]
    entries: dict[int, dict] = {}
    for i, (p, key) in enumerate(zip(picks, keys)):
        if key is not None:
            entry = load_result(cache_dir, KIND, key, lambda meta, arrays, p=p: _card_entry(meta, p))
            if entry is not None:
                entries[i] = entry
    todo = [i for i in range(len(picks)) if i not in entries]
    if entries:
        gallery.notes.append(f"Heatmaps of {len(entries)} of {len(picks)} images reused from the cache (same model "
                             "weights, image and method).")
    missing = _draw_new(run, picks, todo, keys, entries, gallery, method, start, cache_dir) if todo else 0
    gallery.layer = gallery.layer or next((e["layer"] for e in entries.values()), "")
    for i, p in enumerate(picks):
        if i not in entries:
            continue
        e = entries[i]
        maps = [(f"predicted {rc.classes[p.predicted]}", e["predicted"])]
        if not p.correct:
            maps.append((f"true {rc.classes[p.true]}", e["true"]))
        card = HeatmapCard(p, rc.classes[p.true], rc.classes[p.predicted], e["image"], maps)
        (gallery.wrong if i < len(wrong) else gallery.correct).append(card)
    if missing:
        gallery.notes.append(f"{missing} chosen image(s) could not be read any more and are left out.")


def _draw_new(run, picks: list[Pick], todo: list[int], keys: list[str | None], entries: dict[int, dict],
              gallery: HeatmapGallery, method: str, start: float, cache_dir: Path) -> int:
    """Grad-CAM cards of picks[todo] into entries (and the cache), within the time budget; how many images
    could not be read."""
    import torch

    from ..data.images import UnreadableImage
    from ..explain.cam import Explainer, require_grad_cam
    from ..explain.images import EvalPreprocess
    from ..explain.overlay import data_uri, enlarged, overlay

    require_grad_cam()
    prep = EvalPreprocess(run.data_config)
    missing = 0
    with Explainer(run.model, method, "cpu") as explainer:
        gallery.layer = explainer.target.name
        for b in range(0, len(todo), BATCH):
            if time.perf_counter() - start > REPORT_HEATMAP_SECONDS:
                gallery.notes.append(f"Stopped after {REPORT_HEATMAP_SECONDS:.0f} s; `tlearn explain` draws more.")
                break
            ready = []
            for i in todo[b:b + BATCH]:
                try:
                    ready.append((i, prep.from_path(picks[i].path)))
                except UnreadableImage:
                    missing += 1
            if not ready:
                continue
            batch = torch.stack([im.tensor for _, im in ready])
            _, by_pred = explainer.explain(batch, [picks[i].predicted for i, _ in ready])
            wrong_rows = [r for r, (i, _) in enumerate(ready) if not picks[i].correct]
            by_true = dict(zip(wrong_rows, explainer.explain(batch[wrong_rows], [picks[ready[r][0]].true
                                                                                for r in wrong_rows])[1]
                               if wrong_rows else []))
            for r, (i, im) in enumerate(ready):
                entry = {"layer": gallery.layer, "image": data_uri(enlarged(im.crop, THUMB_PX)),
                         "predicted": data_uri(overlay(im.crop, by_pred[r].heatmap, THUMB_PX)),
                         "true": data_uri(overlay(im.crop, by_true[r].heatmap, THUMB_PX)) if r in by_true else None}
                entries[i] = entry
                if keys[i] is not None:
                    save_result(cache_dir, KIND, keys[i], entry)
    return missing
