"""Candidate sources for ranking: registry backbones with weights here, timm:<name>, and tlearn run directories.

A source gives a feature extractor (what a linear probe or fine-tuning would start from) and, for LEEP and NCE,
the source's own classifier over those features: the ImageNet head of a registry model, a run's trained head.
"""
from __future__ import annotations


from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from ..backbones.model import BackboneInfo, load_imagenet_classifier, weights_available
from ..backbones.registry import get_spec, list_specs
from ..errors import TlearnError
from ..runs import layout
from ..runs.source import load_source as load_backbone_or_run

OFFLINE = "offline"  # every registry backbone whose pretrained weights are found without a network

Head = Callable[[torch.Tensor], torch.Tensor]  # pooled features -> source class logits


def offline_sources() -> list[str]:
    """Registry backbones with pretrained weights available offline, in registry order."""
    return [spec.name for spec in list_specs() if spec.weights is not None and weights_available(spec)]


def parse_sources(text: str | None) -> list[str]:
    """A comma-separated list; 'offline' (also the default) stands for offline_sources()."""
    names: list[str] = []
    for part in (text or OFFLINE).split(","):
        part = part.strip()
        if part:
            names += offline_sources() if part == OFFLINE else [part]
    names = list(dict.fromkeys(names))
    if not names:
        raise TlearnError("no candidate sources: no registry backbone has weights here; pass --sources with "
                          "backbone names, timm:<name> or tlearn run directories.")
    return names


def source_kind(name: str) -> str:
    return "run" if layout.is_run(name) else "timm" if name.startswith("timm:") else "registry"


@dataclass
class Source:
    """A loaded candidate: its feature extractor, the record of what was loaded, and its classifier on demand."""

    name: str
    backbone: nn.Module
    info: BackboneInfo
    kind: str
    _head: Head | None = field(default=None, repr=False)

    def head(self) -> Head:
        """The source's own classifier over pooled features (loaded on first use)."""
        if self._head is None:
            self._head = _run_head(self.name) if self.kind == "run" else _imagenet_head(self.info)
        return self._head


def load_source(name: str, image_size: int | None = None) -> Source:
    """Load one candidate; a clear TlearnError when it cannot be used (no weights, not a run, unknown name).
    image_size: score it at this input size instead of its own (as `fit --image-size` would train it)."""
    kind = source_kind(name)
    backbone, info = load_backbone_or_run(name, image_size=image_size)
    return Source(name=name, backbone=backbone, info=info, kind=kind)


def _run_head(run_dir: str) -> Head:
    from ..runs.run import Run

    model = Run(run_dir).model.float()
    return model.classify


def _imagenet_head(info: BackboneInfo) -> Head:
    """The module that the registry's strip() replaces: the classifier that reads exactly the pooled features."""
    spec = get_spec(info.architecture)
    full = load_imagenet_classifier(info.architecture)
    before = dict(full.named_modules())
    for name, module in spec.strip(full).named_modules():
        if isinstance(module, nn.Identity) and name in before and not isinstance(before[name], nn.Identity):
            return before[name].eval().float()
    raise TlearnError(f"{info.name}: cannot find its classifier, so LEEP/NCE cannot use it; rank with logme or "
                      "hscore.")


@torch.inference_mode()
def source_probabilities(source: Source, features, batch: int = 4096):
    """Softmax of the source's classifier over pooled features (numpy in, numpy float64 out)."""
    import numpy as np

    head = source.head()
    out = []
    for start in range(0, len(features), batch):
        logits = head(torch.from_numpy(np.ascontiguousarray(features[start:start + batch], dtype=np.float32)))
        out.append(torch.softmax(logits.double(), dim=1).numpy())
    return np.concatenate(out) if out else np.zeros((0, 0))


def describe(name: str) -> str:
    """A short label for tables: a run directory by its folder name."""
    return Path(name).name if source_kind(name) == "run" else name
