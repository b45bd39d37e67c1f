"""Where a model starts from (a registry backbone or an earlier run) and the one resolver of its data config.

The data config (input size, training size, DICOM window) comes from the user's options first, then from the
source run's recorded config, then from the backbone's own: fit, distill, doctor and the auto search all
resolve it here.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

from torch import nn

from ..backbones.model import PRETRAINED, BackboneInfo, load_backbone
from ..data.transforms import DataConfig
from ..errors import TlearnError
from ..hashing import sha256_file
from . import layout
from .run import Run


def resolve_data_config(source: DataConfig, *, image_size: int | None = None, train_size: int | None = None,
                        dicom_window: str | None = None) -> DataConfig:
    """source (a run's recorded data config, or the backbone's) with the options the user gave on top."""
    config = source.with_size(image_size)
    if dicom_window is not None and dicom_window != config.dicom_window:
        config = dataclasses.replace(config, dicom_window=dicom_window)
    if train_size:
        config = dataclasses.replace(config, train_size=train_size)
    return config


def resolve_info(info: BackboneInfo, **options) -> BackboneInfo:
    """info with its data config resolved (options as in resolve_data_config)."""
    return dataclasses.replace(info, data_config=resolve_data_config(info.data_config, **options))


def load_run_source(run_dir: str | Path) -> tuple[nn.Module, BackboneInfo]:
    """A finished run's trained backbone as the source for a new task (domain -> domain transfer)."""
    run = Run(run_dir)  # the one reader of a run directory: complete, its config and backbone section checked
    run_dir, source = run.path, run.backbone_info
    module = run.model.backbone.train()  # model.safetensors checked against the architecture as it is read
    info = BackboneInfo(name=str(run_dir), architecture=source.architecture, feature_dim=source.feature_dim,
                        data_config=source.data_config, weights=f"run:{run_dir}",
                        weights_sha256=sha256_file(run_dir / layout.MODEL), weights_origin="run")
    return module, info


def load_source(name: str, weights: str | None = None, weights_sha256: str | None = None,
                **data_options) -> tuple[nn.Module, BackboneInfo]:
    """The pretrained backbone NAME, or the run directory NAME, with its data config resolved (data_options as
    in resolve_data_config)."""
    if layout.is_run(name):
        if weights not in PRETRAINED:
            raise TlearnError("--weights cannot be combined with a run directory as backbone.")
        module, info = load_run_source(name)
    else:
        module, info = load_backbone(name, weights, weights_sha256)
    return module, resolve_info(info, **data_options)
