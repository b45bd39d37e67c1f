"""The graph that ships: uint8 RGB images (N, S, S, 3) in, class probabilities out (multi-label: one sigmoid
probability per label)."""
from __future__ import annotations

import torch
from torch import nn

from ..backbones.model import TransferModel
from ..data.transforms import DataConfig


class ImageClassifier(nn.Module):
    """Wraps a TransferModel so callers hand over pixels as they have them; normalisation lives in the graph."""

    def __init__(self, model: TransferModel, data_config: DataConfig, multilabel: bool = False):
        super().__init__()
        self.model = model
        self.multilabel = multilabel  # a sigmoid per label instead of one softmax over the classes
        self.input_size = data_config.input_size
        std = torch.tensor(data_config.std, dtype=torch.float32).view(1, 3, 1, 1)
        mean = torch.tensor(data_config.mean, dtype=torch.float32).view(1, 3, 1, 1)
        # ((x / 255) - mean) / std, folded into one multiply-add
        self.register_buffer("scale", 1.0 / (255.0 * std))
        self.register_buffer("shift", mean / std)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.permute(0, 3, 1, 2).to(torch.float32)
        x = x * self.scale - self.shift
        logits = self.model(x)
        return torch.sigmoid(logits) if self.multilabel else torch.softmax(logits, dim=1)


def example_input(size: int, batch: int = 2) -> torch.Tensor:
    """Random uint8 images, the input the exporters trace with."""
    s = size
    return torch.randint(0, 256, (batch, s, s, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
