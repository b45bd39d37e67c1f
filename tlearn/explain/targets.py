"""Where each backbone family is looked at: the layer whose activations a class-activation map weighs.

One table for the registry's own backbones, and a rule for any other timm model (ViT-style models by their
last block, CNNs by their last feature stage). The layer's output is brought to (N, C, H, W) by `to_grid`:
ViT tokens lose their prefix (class/register) tokens and are folded into the patch grid; channels-last maps
(timm's Swin) are permuted.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from ..errors import TlearnError

# registry name -> module path inside the feature extractor (TransferModel.backbone): the last spatial layer
# before global pooling, as Selvaraju et al. 2017 recommend (the best compromise of semantics and resolution).
TARGET_LAYERS: dict[str, str] = {
    "compact_cnn": "top.2",  # the top conv block's ReLU, before pooling
    "efficientnet_lite0": "bn2", "efficientnet_lite1": "bn2", "efficientnet_lite2": "bn2",  # conv_head + BN + ReLU6
    "resnet18": "layer4", "resnet50": "layer4",
    "vgg16_bn": "features",  # the last conv block after its max-pool (7x7)
    "inception_v3": "Mixed_7c",
    "mobilenet_v3_large": "features", "mobilenet_v3_small": "features",
    "convnext_tiny": "features",
}


@dataclass
class CamTarget:
    """The layer a CAM weighs, its name (for the index and the docs) and the reshape to (N, C, H, W)."""

    layer: nn.Module
    name: str
    reshape: "GridReshape"


class GridReshape:
    """A layer's output -> (N, C, H, W): tokens (N, P + H*W, C) folded into the patch grid, channels-last permuted."""

    def __init__(self, prefix_tokens: int = 0, channels: int | None = None):
        self.prefix_tokens = prefix_tokens
        self.channels = channels

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim == 3:  # ViT tokens
            tokens = x[:, self.prefix_tokens:, :]
            side = math.isqrt(tokens.shape[1])
            if side * side != tokens.shape[1]:
                raise TlearnError(f"explain: {tokens.shape[1]} patch tokens do not form a square grid (after "
                                  f"{self.prefix_tokens} prefix tokens); this model's input is not square.")
            return tokens.reshape(x.shape[0], side, side, x.shape[2]).permute(0, 3, 1, 2)
        if x.ndim == 4 and self.channels and x.shape[-1] == self.channels and x.shape[1] != self.channels:
            return x.permute(0, 3, 1, 2)  # channels-last stage output (timm Swin)
        if x.ndim != 4:
            raise TlearnError(f"explain: the target layer gives a {x.ndim}-d output {tuple(x.shape)}, not a map.")
        return x


def _vit_like(backbone: nn.Module) -> bool:
    blocks = getattr(backbone, "blocks", None)
    return (hasattr(backbone, "patch_embed") and isinstance(blocks, (nn.Sequential, nn.ModuleList)) and len(blocks) > 0
            and hasattr(blocks[-1], "norm1"))


def cam_target(backbone: nn.Module, architecture: str) -> CamTarget:
    """The layer to explain for a feature extractor built from `architecture` (a registry name or timm:<name>)."""
    if architecture in TARGET_LAYERS:
        path = TARGET_LAYERS[architecture]
        return CamTarget(backbone.get_submodule(path), path, GridReshape())
    if _vit_like(backbone):
        # The last block's output reaches the logits only through the class token (or the pool), so its patch
        # tokens get no gradient; the input of its attention (norm1) does (pytorch-grad-cam's ViT recipe).
        name = f"blocks.{len(backbone.blocks) - 1}.norm1"
        return CamTarget(backbone.get_submodule(name), name,
                         GridReshape(prefix_tokens=int(getattr(backbone, "num_prefix_tokens", 1))))
    info = getattr(backbone, "feature_info", None)
    if isinstance(info, list) and info and isinstance(info[-1], dict) and info[-1].get("module"):
        name = info[-1]["module"]
        return CamTarget(backbone.get_submodule(name), name, GridReshape(channels=info[-1].get("num_chs")))
    raise TlearnError(f"explain does not know which layer of {architecture!r} to look at; add it to "
                      "tlearn/explain/targets.py TARGET_LAYERS (the last spatial layer before pooling).")
