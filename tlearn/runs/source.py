"""A backbone as the user names it: a registry name, timm:<name>, or a tlearn run directory (its trained backbone).

The backbones layer knows no run directories; a finished run as the source for a new task (domain -> domain
transfer) is resolved here, and everything that takes --backbone or --student loads through load_backbone.
"""
from __future__ import annotations

from pathlib import Path

from torch import nn

from ..backbones.model import PRETRAINED, BackboneInfo
from ..backbones.model import load_backbone as load_registry_backbone
from ..backbones.registry import get_spec
from ..backbones.weights import load_state_dict
from ..constants import DEFAULT_BACKBONE
from ..errors import TlearnError
from ..hashing import sha256_file
from . import layout


def is_run_dir(path: str | Path) -> bool:
    """A tlearn run directory (finished or not: an unfinished one is refused when loaded, with the reason)."""
    return layout.is_run(path)


def backbone_from_run(run_dir: str | Path) -> tuple[nn.Module, BackboneInfo]:
    """A finished run's trained backbone and the record of it (weights "run:<dir>", sha256 of its model file)."""
    run_dir = Path(run_dir)
    layout.require_complete(run_dir)
    config = layout.read_config(run_dir)
    try:
        source = BackboneInfo.from_dict(config["backbone"])
    except (KeyError, TypeError) as exc:
        raise TlearnError(f"{run_dir / layout.CONFIG} has no usable backbone section ({exc!r}); it cannot be "
                          "used as --backbone.") from None
    spec = get_spec(source.architecture)
    module = spec.strip(spec.create())
    state = load_state_dict(run_dir / layout.MODEL)
    backbone_state = {k.removeprefix("backbone."): v for k, v in state.items() if k.startswith("backbone.")}
    module.load_state_dict(backbone_state, strict=True)
    info = BackboneInfo(
        name=str(run_dir), architecture=source.architecture, feature_dim=source.feature_dim,
        data_config=source.data_config, weights=f"run:{run_dir}",
        weights_sha256=sha256_file(run_dir / layout.MODEL), weights_origin="run",
    )
    return module, info


def load_backbone(name: str = DEFAULT_BACKBONE, weights: str | None = None,
                  weights_sha256: str | None = None) -> tuple[nn.Module, BackboneInfo]:
    """A feature extractor and the record of what was loaded: a run directory's trained backbone, or else
    tlearn.backbones.load_backbone (registry or timm:<name>, weights resolved offline first)."""
    if is_run_dir(name):
        if weights not in PRETRAINED:
            raise TlearnError("--weights cannot be combined with a run directory as backbone.")
        return backbone_from_run(name)
    if Path(name).exists() and not name.startswith("timm:"):
        raise TlearnError(f"{name} exists but is not a tlearn run directory (config.yaml + model.safetensors).")
    return load_registry_backbone(name, weights, weights_sha256)
