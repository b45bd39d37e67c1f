"""Class-activation maps of a transfer model with pytorch-grad-cam (the `grad-cam` package, MIT).

Explainer(model).explain(batch) -> probabilities and one heatmap per image, for the predicted class or a chosen
one. Heatmaps are (H, W) float32 in [0, 1] at the model's input size, aligned with the eval crop it saw.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..backbones.model import TransferModel
from ..errors import TlearnError
from .methods import DEFAULT_METHOD, METHODS
from .targets import CamTarget, cam_target



def require_grad_cam():
    """The pytorch_grad_cam module, or a TlearnError that says how to install it."""
    try:
        import pytorch_grad_cam
    except ImportError:
        raise TlearnError("heatmaps need the grad-cam package: pip install 'tlearn[explain]' "
                          "(or pip install grad-cam==1.5.7).") from None
    return pytorch_grad_cam


def grad_cam_available() -> bool:
    try:
        require_grad_cam()
        return True
    except TlearnError:
        return False


@dataclass
class Explanation:
    """One image's heatmap for one class."""

    class_index: int
    probability: float  # of that class
    heatmap: np.ndarray  # (H, W) float32 in [0, 1]


class Explainer:
    """Heatmaps of where a TransferModel looks, for batches of eval-transformed images."""

    def __init__(self, model: TransferModel, method: str = DEFAULT_METHOD, device: str | torch.device = "cpu"):
        if method not in METHODS:
            raise TlearnError(f"unknown --method {method!r}; choose one of {', '.join(METHODS)}.")
        gc = require_grad_cam()
        self.method = method
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.target: CamTarget = cam_target(model.backbone, model.architecture)
        self._cam = getattr(gc, METHODS[method])(model=self.model, target_layers=[self.target.layer],
                                                 reshape_transform=self.target.reshape)
        # the input requires grad, so activations have a graph even where a run froze the backbone's parameters
        # (the subclasses' constructors do not pass this BaseCAM option on)
        self._cam.compute_input_gradient = True

    def explain(self, batch: torch.Tensor, classes: Sequence[int | None] | None = None
                ) -> tuple[np.ndarray, list[Explanation]]:
        """(softmax probabilities (N, K), one Explanation per image): for classes[i], or the predicted class."""
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

        batch = batch.to(self.device, torch.float32)
        n_classes = self.model.head.out_features
        wanted = list(classes) if classes is not None else [None] * len(batch)
        for k in wanted:
            if k is not None and not 0 <= k < n_classes:
                raise TlearnError(f"class index {k} is outside the model's {n_classes} classes.")
        with torch.enable_grad():
            if all(k is None for k in wanted):  # the predicted classes: one forward pass
                maps = self._cam(input_tensor=batch, targets=None)
            else:
                if any(k is None for k in wanted):  # mixed: the predicted classes first
                    with torch.no_grad():
                        predicted = self.model(batch).argmax(1).tolist()
                    wanted = [p if k is None else k for p, k in zip(predicted, wanted)]
                maps = self._cam(input_tensor=batch, targets=[ClassifierOutputTarget(int(k)) for k in wanted])
            logits = self._cam.outputs.detach()
        probs = torch.softmax(logits.double().cpu(), dim=1).numpy()
        chosen = [int(probs[i].argmax()) if k is None else int(k) for i, k in enumerate(wanted)]
        return probs, [Explanation(k, float(probs[i, k]), np.clip(maps[i].astype(np.float32), 0.0, 1.0))
                       for i, k in enumerate(chosen)]

    def close(self) -> None:
        """Remove the hooks from the model (it stays usable for plain prediction)."""
        self._cam.activations_and_grads.release()

    def __enter__(self) -> "Explainer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
