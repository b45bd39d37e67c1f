"""Test-time augmentation: class probabilities averaged over flipped and cropped views of each image.

Policies (views per image):
- flip:  the eval centre crop and its mirror image (2 views, twice the compute);
- crops: the five crops (corners + centre) of the eval resize and their mirrors (10 views, torchvision TenCrop).
TTA bypasses the feature cache (the cache holds one view per image) and runs the whole model on every view.
"""
from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader
from torchvision.transforms import InterpolationMode
from torchvision.transforms import v2 as T

from ..backbones.model import TransferModel
from ..data.layout import Sample, SkippedFile
from ..data.transforms import DataConfig, normalize, resize_crop
from ..device import pick_device, resolve_precision
from ..errors import TlearnError
from ..features.extract import FeatureSet, ImageFiles, collate_skipping, default_workers, forward_batches, \
    prepare_for_inference

TTA_POLICIES = {"flip": 2, "crops": 10}


def tta_transform(cfg: DataConfig, policy: str):
    """PIL RGB image -> (views, 3, S, S) normalised tensor."""
    if policy not in TTA_POLICIES:
        raise TlearnError(f"--tta {policy!r} is not a test-time augmentation; choose one of {sorted(TTA_POLICIES)}.")
    to_tensor = T.Compose([T.PILToTensor(), *normalize(cfg)])
    if policy == "flip":
        crop = resize_crop(cfg)

        def views(img):
            x = to_tensor(crop(img))
            return torch.stack([x, x.flip(-1)])
    else:
        resize = T.Resize(cfg.resize_size, interpolation=InterpolationMode(cfg.interpolation), antialias=True)
        ten = T.TenCrop(cfg.input_size)

        def views(img):
            return torch.stack([to_tensor(v) for v in ten(resize(img))])
    return views


class _ViewFiles(ImageFiles):
    def __init__(self, paths, cfg: DataConfig, policy: str):
        super().__init__(paths, cfg)
        self.transform = tta_transform(cfg, policy)


def _collate_views(batch):
    """Like collate_skipping, with each image's views flattened into the batch: (B * views, 3, S, S)."""
    index, images, failed = collate_skipping(batch)
    return index, (images.flatten(0, 1) if images is not None else None), failed


def predict_samples_tta(model: TransferModel, samples: Sequence[Sample], data_config: DataConfig, policy: str = "flip",
                        *, precision: str = "auto", device: str = "auto", batch_size: int = 32,
                        num_workers: int | None = None, progress: bool = False,
                        desc: str = "predict (TTA)") -> tuple[np.ndarray, FeatureSet]:
    """(probabilities averaged over the views, FeatureSet of the decodable samples with no features kept)."""
    start = time.perf_counter()
    tta_transform(data_config, policy)  # an unknown policy fails here, before any work
    n_views = TTA_POLICIES[policy]
    dev = pick_device(device)
    precision = resolve_precision(precision, dev)
    samples = list(samples)
    per_batch = max(1, batch_size // n_views)
    workers = default_workers() if num_workers is None else num_workers
    loader = DataLoader(_ViewFiles([s.path for s in samples], data_config, policy), batch_size=per_batch,
                        shuffle=False, num_workers=workers, collate_fn=_collate_views,
                        prefetch_factor=4 if workers else None)
    probs: dict[int, np.ndarray] = {}
    skipped: dict[int, SkippedFile] = {}

    def keep(index: np.ndarray, logits: np.ndarray | None, failed: list) -> None:
        for j, reason in failed:
            skipped[j] = SkippedFile(str(samples[j].path), reason)
        if logits is None:
            return
        p = torch.softmax(torch.from_numpy(logits).double(), dim=1).numpy()
        for j, mean in zip(index, p.reshape(len(index), n_views, -1).mean(1)):
            probs[int(j)] = mean

    module = prepare_for_inference(model, dev)
    try:
        forward_batches(module, loader, dev, precision, keep, progress, desc)
    finally:
        model.cpu()
    kept = sorted(probs)
    n_classes = model.head.out_features
    out = np.stack([probs[i] for i in kept]) if kept else np.zeros((0, n_classes))
    fs = FeatureSet(features=np.zeros((len(kept), 0), np.float32), samples=[samples[i] for i in kept],
                    skipped=[skipped[i] for i in sorted(skipped)], seconds=time.perf_counter() - start)
    return out, fs
