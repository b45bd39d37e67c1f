"""Decode any image a user is likely to have into an 8-bit RGB PIL image.

Handles EXIF orientation, grayscale, palette, RGBA/LA (composited on white), CMYK, 16-bit and float
images (scaled by their own value range, the usual windowing for scans). Anything that cannot be
decoded raises UnreadableImage with a reason a person understands.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".gif", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm", ".jfif"}
)

# Images above this many pixels are refused rather than decoded (decompression bombs).
MAX_PIXELS = 20_000 * 20_000


class UnreadableImage(Exception):
    """The file is not a decodable image; str(exc) is the reason."""


def has_image_extension(path: str | Path) -> bool:
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def to_rgb(img: Image.Image) -> Image.Image:
    """Convert a decoded image of any mode to 8-bit RGB."""
    if img.mode == "RGB":
        return img
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if img.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        return _high_depth_to_rgb(img)
    # L, 1, CMYK, YCbCr, LAB, HSV: Pillow's own conversion is right for these.
    return img.convert("RGB")


def _high_depth_to_rgb(img: Image.Image) -> Image.Image:
    """Scale a 16/32-bit or float image to 8 bits by its own min..max range."""
    arr = np.asarray(img, dtype=np.float64)
    lo, hi = float(np.min(arr)), float(np.max(arr))
    scaled = np.zeros_like(arr) if hi <= lo else (arr - lo) * (255.0 / (hi - lo))
    grey = Image.fromarray(np.clip(np.rint(scaled), 0, 255).astype(np.uint8), mode="L")
    return grey.convert("RGB")


def load_rgb(path: str | Path, draft_size: int | None = None) -> Image.Image:
    """Open, fully decode and orient an image file; raise UnreadableImage with a reason otherwise.

    draft_size lets JPEG decoding scale down by powers of two while staying >= that size (much faster
    for large photos and visually identical after the final resize).
    """
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise UnreadableImage(f"cannot read file: {exc.strerror or exc}") from exc
    if size == 0:
        raise UnreadableImage("empty file (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                if img.width * img.height > MAX_PIXELS:
                    raise UnreadableImage(f"image too large ({img.width}x{img.height} pixels)")
                if draft_size and img.format == "JPEG":
                    img.draft("RGB", (draft_size, draft_size))
                img.load()
                img = ImageOps.exif_transpose(img)
                return to_rgb(img)
    except UnreadableImage:
        raise
    except UnidentifiedImageError:
        raise UnreadableImage("not an image (unknown or corrupt format)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise UnreadableImage(f"refused as a decompression bomb: {exc}") from None
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise UnreadableImage(f"corrupt or truncated image: {exc}") from None
