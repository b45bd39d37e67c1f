"""Cheap facts about a data set: image size, grey content, class counts and how far the data's BatchNorm input
statistics are from the pretrained ones. Train images only (never test). Read by --strategy auto's rules,
finetune's recipe choice (tlearn.strategies.recipes) and the probe's advice.

Cost: SIZE_SAMPLE image headers, PIXEL_SAMPLE decoded images and one forward pass over them (1-3 s on 2 CPU
cores at 224 px); cached_facts keeps them under CACHE/facts, keyed like the features (backbone weights, data
config, the train list), so a second fit on the same data reads them for nothing."""
from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from ..data.images import UnreadableImage, load_rgb
from ..data.layout import Sample
from ..data.transforms import DataConfig, eval_transform
from ..hashing import file_identity, stable_hash
from ..result_cache import BadEntry, load_result, save_result
from .cache import module_fingerprint

log = logging.getLogger("tlearn")

SIZE_SAMPLE = 200  # image headers read for the size statistic (cheap: no decoding)
PIXEL_SAMPLE = 48  # images decoded for the grey check, the decode timing and the BatchNorm statistics
KIND = "facts"  # CACHE/facts/<key>.npz (tlearn.result_cache)
FACTS_VERSION = 1  # bump when a fact's definition changes: cached facts of another version are measured again
GREY_TOLERANCE = 2.0  # mean |R-G| + |G-B| (0-255) below which an image counts as grey (JPEG chroma noise)


@dataclass
class DataFacts:
    n_train: int
    n_val: int
    n_classes: int
    class_counts: list[int]  # train images per class
    min_per_class: int
    median_per_class: float
    imbalance: float  # largest / smallest train class
    median_short_side: float | None  # px, over a sample of train images
    grey_fraction: float | None  # share of the decoded sample whose three channels are equal
    bn_shift: float | None  # mean over BatchNorm layers of |data mean - running mean| / running std
    decode_seconds_per_image: float  # decode + eval transform, measured on the sample
    sampled: int
    seconds: float

    def to_dict(self) -> dict:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict) -> "DataFacts":
        """Facts read back (the cache, auto's state): every field present, counts non-negative integers, the
        measurements finite numbers (ValueError otherwise)."""
        fields = {f.name: f.type for f in dataclasses.fields(cls)}
        if not isinstance(d, dict) or set(fields) - set(d):
            raise ValueError(f"data facts lack {sorted(set(fields) - set(d or {}))}")
        for name, kind in fields.items():
            value = d[name]
            if kind == "int":
                ok = type(value) is int and value >= 0
            elif kind == "list[int]":
                ok = isinstance(value, list) and all(type(v) is int and v >= 0 for v in value)
            else:  # float, float | None
                ok = (value is None and "None" in kind) or (
                    isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value))
            if not ok:
                raise ValueError(f"data facts: {name}={value!r} is not a valid {kind}")
        return cls(**{k: d[k] for k in fields})


def _sample(samples: list[Sample], k: int, seed: int) -> list[Sample]:
    if len(samples) <= k:
        return list(samples)
    rng = np.random.default_rng(seed)
    return [samples[i] for i in sorted(rng.choice(len(samples), size=k, replace=False))]


def _short_side(path) -> int | None:
    try:
        with Image.open(path) as img:
            return min(img.size)
    except (OSError, ValueError, Image.DecompressionBombError):
        return None


def _is_grey(img: Image.Image) -> bool:
    a = np.asarray(img.reduce(max(1, min(img.size) // 64)), dtype=np.int16)
    return float(np.abs(a[..., 0] - a[..., 1]).mean() + np.abs(a[..., 1] - a[..., 2]).mean()) < GREY_TOLERANCE


@torch.inference_mode()
def batchnorm_shift(backbone: nn.Module, images: torch.Tensor) -> float | None:
    """How far the data's BatchNorm inputs are from the pretrained running statistics (0: as on ImageNet).

    For every BatchNorm layer of the backbone in inference mode: the mean over channels of
    |batch mean - running mean| / sqrt(running var); then the mean over layers.
    """
    shifts: list[float] = []

    def hook(module: nn.modules.batchnorm._BatchNorm, inputs, _output) -> None:
        x = inputs[0].float()
        mean = x.mean(dim=(0, 2, 3)) if x.dim() == 4 else x.mean(dim=0)
        std = (module.running_var.float() + module.eps).sqrt()
        shifts.append(float(((mean - module.running_mean.float()).abs() / std).mean()))

    layers = [m for m in backbone.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)
              and m.running_mean is not None]
    if not layers or not len(images):
        return None
    handles = [m.register_forward_hook(hook) for m in layers]
    was_training = backbone.training
    try:
        backbone.eval()
        backbone(images)
    finally:
        for h in handles:
            h.remove()
        backbone.train(was_training)
    return float(np.mean(shifts)) if shifts else None


def measure_facts(train: list[Sample], val: list[Sample], classes: list[str], backbone: nn.Module,
                  data_config: DataConfig, seed: int = 0) -> DataFacts:
    """Facts from the train split (a sample of it for the pixel-level ones); a few seconds on a CPU."""
    start = time.perf_counter()
    counts = Counter(s.label for s in train)
    per_class = [counts.get(k, 0) for k in range(len(classes))]
    sides = [s for s in (_short_side(x.path) for x in _sample(train, SIZE_SAMPLE, seed)) if s]

    transform = eval_transform(data_config)
    tensors, greys = [], []
    t0 = time.perf_counter()
    for sample in _sample(train, PIXEL_SAMPLE, seed + 1):
        try:
            img = load_rgb(sample.path, draft_size=data_config.resize_size,
                           dicom_window=data_config.dicom_window)
        except UnreadableImage:
            continue
        greys.append(_is_grey(img))
        tensors.append(transform(img))
    decode = (time.perf_counter() - t0) / max(len(tensors), 1)
    shift = batchnorm_shift(backbone, torch.stack(tensors)) if tensors else None
    nonzero = [c for c in per_class if c > 0] or [0]
    return DataFacts(
        n_train=len(train), n_val=len(val), n_classes=len(classes), class_counts=per_class,
        min_per_class=min(per_class) if per_class else 0, median_per_class=float(np.median(per_class)),
        imbalance=float(max(nonzero) / max(min(nonzero), 1)),
        median_short_side=float(np.median(sides)) if sides else None,
        grey_fraction=float(np.mean(greys)) if greys else None, bn_shift=shift,
        decode_seconds_per_image=decode, sampled=len(tensors), seconds=time.perf_counter() - start,
    )


def facts_key(train: list[Sample], n_val: int, classes: list[str], backbone: nn.Module, data_config: DataConfig,
              seed: int) -> str:
    """The cache key of a set's facts: the backbone's weights, the data config, the train list (path, label,
    file identity), the val count, the classes and the sampling seed."""
    return stable_hash({
        "version": FACTS_VERSION, "backbone": module_fingerprint(backbone), "data_config": asdict(data_config),
        "train": [[str(s.path), s.label, *file_identity(s.path)] for s in train], "n_val": n_val,
        "classes": list(classes), "seed": seed, "size_sample": SIZE_SAMPLE, "pixel_sample": PIXEL_SAMPLE,
    }, length=24)


def _cached(meta: dict, arrays: dict) -> DataFacts:
    try:
        return DataFacts.from_dict(meta)
    except ValueError as exc:
        raise BadEntry(str(exc)) from None


def cached_facts(train: list[Sample], val: list[Sample], classes: list[str], backbone: nn.Module,
                 data_config: DataConfig, cache_dir: str | Path | None, seed: int = 0) -> tuple[DataFacts, bool]:
    """(facts, whether they came from the cache): measure_facts once per backbone, data config and train list
    (tlearn.result_cache: a damaged entry is measured again; an unwritable cache only costs the measurement)."""
    key = facts_key(train, len(val), classes, backbone, data_config, seed) if cache_dir is not None else ""
    cached = load_result(cache_dir, KIND, key, _cached)
    if cached is not None:
        return cached, True
    facts = measure_facts(train, val, classes, backbone, data_config, seed=seed)
    save_result(cache_dir, KIND, key, facts.to_dict())
    return facts, False
