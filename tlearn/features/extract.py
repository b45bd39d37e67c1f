"""Batched feature extraction: images are streamed (decode -> transform -> forward), only features are kept."""
from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2 as T
from tqdm.auto import tqdm

from ..data.images import UnreadableImage, load_transformed
from ..data.layout import Sample, SkippedFile
from ..data.prefetch import ThreadedBatches, batches_of
from ..data.transforms import BatchNormalize, DataConfig, resize_crop, to_uint8_chw
from ..device import autocast, pick_device, resolve_precision
from ..hashing import file_digest
from .cache import FeatureCache, default_cache_dir, module_fingerprint


class ImageFiles(Dataset):
    """Decode + eval geometry (resize, centre crop) of image files into uint8 tensors, which image_loader's
    collate normalises a batch at a time; a failure yields the reason instead of a tensor."""

    def __init__(self, paths: Sequence[Path], cfg: DataConfig):
        self.paths = list(paths)
        self.transform = T.Compose([resize_crop(cfg), to_uint8_chw])
        self.draft = cfg.resize_size
        self.window = cfg.dicom_window

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        try:
            return i, load_transformed(self.paths[i], self.transform, draft_size=self.draft,
                                       dicom_window=self.window), None
        except UnreadableImage as exc:
            return i, None, str(exc)


def collate_skipping(batch, stack=torch.stack):
    """Stack the decodable images; pass the failures through with their reasons."""
    ok = [(i, x) for i, x, err in batch if err is None]
    failed = [(i, err) for i, _, err in batch if err is not None]
    index = torch.tensor([i for i, _ in ok], dtype=torch.long)
    images = stack([x for _, x in ok]) if ok else None
    return index, images, failed


class NormalizingCollate:
    """collate_skipping whose images are normalised as one batch (in the decode worker, off the forward's
    cores' critical path), channels_last."""

    def __init__(self, cfg: DataConfig):
        self.normalize = BatchNormalize(cfg)

    def __call__(self, batch):
        return collate_skipping(batch, self.normalize)


def default_workers() -> int:
    """One decode worker when there are cores to spare; decoding in-process otherwise."""
    return 1 if (os.cpu_count() or 1) >= 2 else 0


@dataclass
class FeatureSet:
    """Features of the images that decoded, aligned with their samples; the others listed as skipped."""

    features: np.ndarray  # (n, feature_dim) float32
    samples: list[Sample]
    skipped: list[SkippedFile] = field(default_factory=list)
    from_cache: int = 0
    seconds: float = 0.0

    @property
    def labels(self) -> np.ndarray:
        return np.array([s.label for s in self.samples], dtype=np.int64)


DECODE_NICENESS = 0  # priority of the default decode thread below the model's threads (0: the same)


def image_loader(paths: Sequence[Path], cfg: DataConfig, batch_size: int, num_workers: int | None = None):
    """Batches of (index, normalised images, failures) in order. By default one thread of this process decodes
    ahead while the model runs (as fast as a worker process here, without its memory or the copy of each batch:
    docs/results.md#speed-and-memory); num_workers > 0: that many worker processes; 0: no overlap."""
    dataset, collate = ImageFiles(paths, cfg), NormalizingCollate(cfg)
    if num_workers is None:
        return ThreadedBatches(dataset, batches_of(len(dataset), batch_size), collate,
                               threads=default_workers() or 1, ahead=2, niceness=DECODE_NICENESS)
    return DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers, collate_fn=collate,
                      prefetch_factor=4 if num_workers else None)


def prepare_for_inference(module: nn.Module, device: torch.device) -> nn.Module:
    return module.eval().to(device).to(memory_format=torch.channels_last)


@torch.inference_mode()
def forward_batches(module: nn.Module, loader: DataLoader, device: torch.device, precision: str,
                    on_batch, progress: bool = False, desc: str = "") -> None:
    """Run module over a loader of (index, images, failures); hand each result to on_batch."""
    bar = tqdm(total=len(loader.dataset), desc=desc, unit="img", disable=not progress, leave=False)
    for index, images, failed in loader:
        out = None
        if images is not None:
            images = images.to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)
            with autocast(precision, device):
                out = module(images).float().cpu().numpy()
        on_batch(index.numpy(), out, failed)
        bar.update(len(index) + len(failed))
    bar.close()


def extract_features(
    backbone: nn.Module,
    samples: Sequence[Sample],
    data_config: DataConfig,
    *,
    precision: str = "auto",
    device: str | torch.device = "auto",
    batch_size: int = 64,
    cache_dir: str | Path | None = None,
    use_cache: bool = True,
    num_workers: int | None = None,
    progress: bool = True,
    desc: str = "features",
) -> FeatureSet:
    """Pooled backbone features for each decodable sample, reusing the on-disk cache where it can."""
    start = time.perf_counter()
    device = pick_device(device) if isinstance(device, str) else device
    precision = resolve_precision(precision, device)
    samples = list(samples)
    cache = None
    if use_cache and samples:
        cache = FeatureCache(
            cache_dir or default_cache_dir(),
            {"backbone": module_fingerprint(backbone), "data": data_config.cache_dict(), "precision": precision},
        )
    digests: list[str | None] = []
    skipped: dict[int, SkippedFile] = {}
    for i, s in enumerate(samples):
        try:
            digests.append(file_digest(s.path) if cache is not None else None)
        except OSError as exc:
            digests.append(None)
            skipped[i] = SkippedFile(str(s.path), f"cannot read file: {exc.strerror or exc}")
    found = cache.get_many([d for d in digests if d]) if cache is not None else {}
    features: dict[int, np.ndarray] = {}
    for i, d in enumerate(digests):
        if d in found:
            features[i] = found[d]
    from_cache = len(features)
    todo = [i for i in range(len(samples)) if i not in features and i not in skipped]

    if todo:
        module = prepare_for_inference(backbone, device)
        loader = image_loader([samples[i].path for i in todo], data_config, batch_size, num_workers)

        def keep(index: np.ndarray, out: np.ndarray | None, failed: list) -> None:
            for j, reason in failed:
                skipped[todo[j]] = SkippedFile(str(samples[todo[j]].path), reason)
            if out is None:
                return
            rows = []
            for j, vec in zip(index, out):
                features[todo[j]] = vec
                if cache is not None:
                    rows.append((digests[todo[j]], vec))
            if cache is not None and rows:
                cache.put_many(rows)

        forward_batches(module, loader, device, precision, keep, progress, desc)
    if cache is not None:
        cache.close()

    kept = sorted(features)
    dim = next(iter(features.values())).shape[0] if features else 0
    matrix = np.stack([features[i] for i in kept]).astype(np.float32) if kept else np.zeros((0, dim), np.float32)
    return FeatureSet(
        features=matrix,
        samples=[samples[i] for i in kept],
        skipped=[skipped[i] for i in sorted(skipped)],
        from_cache=from_cache,
        seconds=time.perf_counter() - start,
    )
