"""The CAM methods `--method` offers (torch-free, so `tlearn explain --help` stays fast)."""
from __future__ import annotations

# --method name -> pytorch-grad-cam class name; all weigh the target layer's activations, eigencam ignores the class
METHODS = {
    "gradcam": "GradCAM",  # Selvaraju et al. 2017: channel weights = mean gradient
    "gradcam++": "GradCAMPlusPlus",  # Chattopadhay et al. 2018: better for several instances of a class
    "hirescam": "HiResCAM",  # element-wise gradient x activation: faithful to the model's computation
    "xgradcam": "XGradCAM",
    "layercam": "LayerCAM",
    "eigencam": "EigenCAM",  # first principal component of the activations; no gradient, same map for every class
}
DEFAULT_METHOD = "gradcam"
