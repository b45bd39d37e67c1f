"""Images as the run's model sees them: decoded like extraction does and put through the run's eval transform.

`prepare` returns both the eval crop (for the overlay) and the normalised tensor; the tensor is exactly
`eval_transform(data_config)(image)` (resize, centre crop, to tensor, normalise), split at the crop.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image
from torchvision.transforms import v2 as T

from ..data.images import IMAGE_ERRORS, UnreadableImage, load_rgb
from ..data.transforms import DataConfig, normalize, resize_crop
from ..runtime import ImageError, decode_image


@dataclass
class PreparedImage:
    crop: Image.Image  # RGB, input_size x input_size: what the model saw
    tensor: torch.Tensor  # (3, S, S) normalised


class EvalPreprocess:
    """The run's eval transform in two halves: geometry (PIL -> crop) and tensor (crop -> normalised tensor)."""

    def __init__(self, cfg: DataConfig):
        self.cfg = cfg
        self.geometry = resize_crop(cfg)
        self.to_tensor = T.Compose([T.PILToTensor(), *normalize(cfg)])

    def from_image(self, img: Image.Image) -> PreparedImage:
        try:
            crop = self.geometry(img)
        except IMAGE_ERRORS as exc:
            raise UnreadableImage(f"cannot be resized ({type(exc).__name__}: {exc})") from None
        return PreparedImage(crop, self.to_tensor(crop))

    def from_path(self, path: str | Path) -> PreparedImage:
        """Decoded as feature extraction decodes (same draft size); UnreadableImage with a reason otherwise."""
        return self.from_image(load_rgb(path, draft_size=self.cfg.resize_size, dicom_window=self.cfg.dicom_window))

    def from_bytes(self, data: bytes, max_pixels: int) -> PreparedImage:
        """An uploaded image; ImageError (kind, reason) when it is not one."""
        try:
            return self.from_image(decode_image(data, draft_size=self.cfg.resize_size, max_pixels=max_pixels,
                                                 dicom_window=self.cfg.dicom_window))
        except UnreadableImage as exc:
            raise ImageError(str(exc), "too_large") from None
