"""Where a trained model looks: class-activation heatmaps (Grad-CAM and kin, via pytorch-grad-cam).

Explainer (a model's maps for tensors), explain_images (paths, folders, PIL images or numpy arrays through the
run's eval transform; explain_files is its earlier name), the target layer per backbone family (targets.py) and
the overlays (overlay.py). Torch loads on first use.
"""
from __future__ import annotations

__all__ = ["Explainer", "explain_images", "explain_files", "cam_target", "METHODS"]


def __getattr__(name: str):
    if name == "Explainer":
        from .cam import Explainer

        return Explainer
    if name in ("explain_images", "explain_files"):
        from . import explain

        return getattr(explain, name)
    if name == "cam_target":
        from .targets import cam_target

        return cam_target
    if name == "METHODS":
        from .methods import METHODS

        return METHODS
    raise AttributeError(name)
