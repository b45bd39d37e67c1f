"""Heatmaps drawn over the eval crop (jet colour map, half transparent), as PIL images, PNG bytes or data: URIs."""
from __future__ import annotations

import base64
import io

import numpy as np
from PIL import Image

MIN_DISPLAY_PX = 224  # small inputs (compact_cnn's 32 px) are enlarged so that a person can see the map
IMAGE_WEIGHT = 0.5  # share of the photo in the blend; the rest is the colour-mapped heatmap


def overlay(crop: Image.Image, heatmap: np.ndarray, size: int | None = None) -> Image.Image:
    """The heatmap (H, W in [0, 1]) blended over the crop, both resized to `size` px (default: at least 224)."""
    from pytorch_grad_cam.utils.image import show_cam_on_image

    size = size or max(crop.width, MIN_DISPLAY_PX)
    rgb = np.asarray(crop.convert("RGB").resize((size, size), Image.Resampling.BICUBIC), dtype=np.float32) / 255
    cam = np.asarray(Image.fromarray(heatmap.astype(np.float32)).resize((size, size),
                                                                                 Image.Resampling.BILINEAR))
    return Image.fromarray(show_cam_on_image(rgb, np.clip(cam, 0, 1), use_rgb=True, image_weight=IMAGE_WEIGHT))


def enlarged(crop: Image.Image, size: int | None = None) -> Image.Image:
    size = size or max(crop.width, MIN_DISPLAY_PX)
    return crop.convert("RGB").resize((size, size), Image.Resampling.BICUBIC)


def encode(img: Image.Image, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **({"quality": 82} if fmt == "JPEG" else {}))
    return buf.getvalue()


def data_uri(img: Image.Image, fmt: str = "JPEG") -> str:
    """A data: URI (JPEG by default: reports embed many of these)."""
    return f"data:image/{fmt.lower()};base64," + base64.b64encode(encode(img, fmt)).decode("ascii")
