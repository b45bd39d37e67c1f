"""Decode any image a user is likely to have into an 8-bit RGB PIL image.

Handles EXIF orientation, grayscale, palette, RGBA/LA (composited on white), CMYK, 16-bit and float
images (scaled by their own value range, the usual windowing for scans), and DICOM (tlearn.runtime_dicom:
modality LUT, the run's window, MONOCHROME1 inversion). Anything that cannot be
decoded raises UnreadableImage with a reason a person understands. The decoding itself and its limits
(formats, pixels, aspect ratio) live in tlearn.runtime, which exported models use without tlearn.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from PIL import Image

from ..runtime import (DEFAULT_DICOM_WINDOW, IMAGE_EXTENSIONS, IMAGE_FORMATS, MAX_ASPECT_RATIO, MAX_PIXELS,
                       ImageError, decode_image, looks_like_dicom, to_rgb)

__all__ = ["IMAGE_EXTENSIONS", "IMAGE_FORMATS", "MAX_ASPECT_RATIO", "MAX_PIXELS", "UnreadableImage",
           "has_image_extension", "is_image_file", "load_rgb", "load_transformed", "to_rgb"]

# What decoding or resizing an image can raise because of the image itself (its size, its bytes).
IMAGE_ERRORS = (MemoryError, OverflowError, ValueError, Image.DecompressionBombError)

T = TypeVar("T")


class UnreadableImage(Exception):
    """The file is not a decodable image; str(exc) is the reason."""


def has_image_extension(path: str | Path) -> bool:
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def is_image_file(path: str | Path) -> bool:
    """An image by its name, or a DICOM file by its content (DICOM files often have no extension, or a UID's)."""
    return has_image_extension(path) or looks_like_dicom(path)


def load_rgb(path: str | Path, draft_size: int | None = None, max_pixels: int = MAX_PIXELS,
             dicom_window: str = DEFAULT_DICOM_WINDOW) -> Image.Image:
    """Open, fully decode and orient an image file; raise UnreadableImage with a reason otherwise.

    draft_size lets decoding scale large images down while staying >= that size (much faster and smaller
    for large photos, and visually identical after the final resize). dicom_window: see tlearn.runtime_dicom.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise UnreadableImage(f"cannot read file: {exc.strerror or exc}") from exc
    if size == 0:
        raise UnreadableImage("empty file (0 bytes)")
    try:
        return decode_image(path, draft_size=draft_size, max_pixels=max_pixels, dicom_window=dicom_window)
    except ImageError as exc:
        raise UnreadableImage(str(exc)) from None


def load_transformed(path: str | Path, transform: Callable[[Image.Image], T], draft_size: int | None = None,
                     dicom_window: str = DEFAULT_DICOM_WINDOW) -> T:
    """transform(load_rgb(path)); UnreadableImage also when the transform fails on this image (its size)."""
    img = load_rgb(path, draft_size=draft_size, dicom_window=dicom_window)
    try:
        return transform(img)
    except IMAGE_ERRORS as exc:
        raise UnreadableImage(f"cannot be resized ({type(exc).__name__}: {exc})") from None
