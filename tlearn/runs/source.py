"""Where a model starts from: a registry backbone or an earlier run (its trained backbone).

The backbones layer knows no run directories; a finished run as the source for a new task (domain -> domain
transfer) is resolved here, and everything that takes --backbone or --student loads through load_source.
"""
from __future__ import annotations

from pathlib import Path

from torch import nn

from ..backbones.model import PRETRAINED, BackboneInfo, load_backbone
from ..backbones.registry import get_spec
from ..backbones.weights import load_state_dict
from ..errors import TlearnError
from ..hashing import sha256_file
from . import layout


def load_run_source(run_dir: str | Path) -> tuple[nn.Module, BackboneInfo]:
    """A finished run's trained backbone as the source for a new task (domain -> domain transfer)."""
    run_dir = layout.require_complete(run_dir)
    config = layout.read_config(run_dir)
    try:
        source = BackboneInfo.from_dict(config["backbone"])
    except (KeyError, TypeError) as exc:
        raise TlearnError(f"{run_dir / layout.CONFIG} has no usable backbone section ({exc!r}); it cannot be "
                          "used as --backbone.") from None
    spec = get_spec(source.architecture)
    module = spec.strip(spec.create())
    state = load_state_dict(run_dir / layout.MODEL)
    module.load_state_dict({k.removeprefix("backbone."): v for k, v in state.items() if k.startswith("backbone.")},
                           strict=True)
    info = BackboneInfo(name=str(run_dir), architecture=source.architecture, feature_dim=source.feature_dim,
                        data_config=source.data_config, weights=f"run:{run_dir}",
                        weights_sha256=sha256_file(run_dir / layout.MODEL), weights_origin="run")
    return module, info


def load_source(name: str, weights: str | None = None,
                weights_sha256: str | None = None) -> tuple[nn.Module, BackboneInfo]:
    """The pretrained backbone NAME (registry or timm:<name>), or the run directory NAME's trained backbone."""
    if layout.is_run(name):
        if weights not in PRETRAINED:
            raise TlearnError("--weights cannot be combined with a run directory as backbone.")
        return load_run_source(name)
    return load_backbone(name, weights, weights_sha256)
