"""Class probabilities of a transfer model on image samples, through the same cached feature path as fit."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ..backbones.model import TransferModel
from ..data.layout import Sample
from ..data.transforms import DataConfig
from ..features.extract import FeatureSet, extract_features


def head_probabilities(model: TransferModel, features: np.ndarray, multilabel: bool = False) -> np.ndarray:
    """softmax of the head's logits in float64, so probabilities sum to one to many decimals; a multi-label
    head's sigmoid, one independent probability per label."""
    with torch.inference_mode():
        logits = model.classify(torch.from_numpy(features).float())
    return torch.sigmoid(logits.double()).numpy() if multilabel else torch.softmax(logits.double(), dim=1).numpy()


def predict_samples(model: TransferModel, samples: Sequence[Sample], data_config: DataConfig, *,
                    precision: str = "auto", device: str = "auto", batch_size: int = 64,
                    cache_dir: str | Path | None = None, use_cache: bool = True, progress: bool = True,
                    desc: str = "predict", multilabel: bool = False) -> tuple[np.ndarray, FeatureSet]:
    """(probabilities for the decodable samples, their FeatureSet with the skipped ones listed)."""
    fs = extract_features(model.backbone, samples, data_config, precision=precision, device=device,
                          batch_size=batch_size, cache_dir=cache_dir, use_cache=use_cache, progress=progress,
                          desc=desc)
    model.head.cpu()
    n_classes = model.head.out_features
    probs = head_probabilities(model, fs.features, multilabel) if len(fs.samples) else np.zeros((0, n_classes))
    return probs, fs
