"""Pooled backbone features, streamed from images and cached on disk."""
from .cache import FeatureCache, default_cache_dir, module_fingerprint
from .extract import FeatureSet, extract_features, forward_batches, image_loader, prepare_for_inference

__all__ = [
    "FeatureCache", "default_cache_dir", "module_fingerprint", "FeatureSet", "extract_features",
    "forward_batches", "image_loader", "prepare_for_inference",
]
