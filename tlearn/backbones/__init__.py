"""Backbone registry, offline weight resolution and the transfer model."""
from .model import (
    BackboneInfo, TransferModel, build_transfer_model, load_backbone, load_imagenet_classifier,
    weights_available,
)
from . import compact  # noqa: F401  (registers compact_cnn)
from .registry import DEFAULT_BACKBONE, BackboneSpec, count_parameters, get_spec, list_specs, register
from .weights import WeightsSource, load_state_dict, resolve

__all__ = [
    "BackboneInfo", "TransferModel", "build_transfer_model", "load_backbone",
    "load_imagenet_classifier", "weights_available", "DEFAULT_BACKBONE", "BackboneSpec", "count_parameters",
    "get_spec", "list_specs", "register", "WeightsSource", "load_state_dict", "resolve",
]
