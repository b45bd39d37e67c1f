"""Decode any image a user is likely to have into an 8-bit RGB PIL image.

Handles EXIF orientation, grayscale, palette, RGBA/LA (composited on white), CMYK, 16-bit and float
images (scaled by their own value range, the usual windowing for scans). Anything that cannot be
decoded raises UnreadableImage with a reason a person understands. The decoding itself and its limits
(formats, pixels, aspect ratio) live in tlearn.runtime, which exported models use without tlearn.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from PIL import Image

from ..runtime import IMAGE_FORMATS, MAX_ASPECT_RATIO, MAX_PIXELS, ImageError, decode_image, to_rgb

__all__ = ["IMAGE_EXTENSIONS", "IMAGE_FORMATS", "MAX_ASPECT_RATIO", "MAX_PIXELS", "UnreadableImage",
           "has_image_extension", "load_rgb", "load_transformed", "to_rgb"]

IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".gif", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm", ".jfif"}
)

# What decoding or resizing an image can raise because of the image itself (its size, its bytes).
IMAGE_ERRORS = (MemoryError, OverflowError, ValueError, Image.DecompressionBombError)

T = TypeVar("T")


class UnreadableImage(Exception):
    """The file is not a decodable image; str(exc) is the reason."""


def has_image_extension(path: str | Path) -> bool:
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def load_rgb(path: str | Path, draft_size: int | None = None, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Open, fully decode and orient an image file; raise UnreadableImage with a reason otherwise.

    draft_size lets decoding scale large images down while staying >= that size (much faster and smaller
    for large photos, and visually identical after the final resize).
    """
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise UnreadableImage(f"cannot read file: {exc.strerror or exc}") from exc
    if size == 0:
        raise UnreadableImage("empty file (0 bytes)")
    try:
        return decode_image(path, draft_size=draft_size, max_pixels=max_pixels)
    except ImageError as exc:
        raise UnreadableImage(str(exc)) from None


def load_transformed(path: str | Path, transform: Callable[[Image.Image], T], draft_size: int | None = None) -> T:
    """transform(load_rgb(path)); UnreadableImage also when the transform fails on this image (its size)."""
    img = load_rgb(path, draft_size=draft_size)
    try:
        return transform(img)
    except IMAGE_ERRORS as exc:
        raise UnreadableImage(f"cannot be resized ({type(exc).__name__}: {exc})") from None
