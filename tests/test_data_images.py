"""Decoding of the image forms users actually have, and clean refusal of the rest."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from tlearn.data.images import UnreadableImage, load_rgb


def _gradient(w=64, h=48) -> np.ndarray:
    x = np.linspace(0, 255, w, dtype=np.float64)[None, :].repeat(h, 0)
    return np.stack([x, x[::-1, ::-1], np.full_like(x, 128)], axis=-1).astype(np.uint8)


def test_rgb_jpeg_and_uppercase_extension(tmp_path):
    path = tmp_path / "PHOTO.JPG"
    Image.fromarray(_gradient()).save(path, format="JPEG")
    img = load_rgb(path)
    assert img.mode == "RGB" and img.size == (64, 48)


def test_grayscale_palette_rgba_cmyk(tmp_path):
    arr = _gradient()
    Image.fromarray(arr[..., 0]).save(tmp_path / "grey.png")
    Image.fromarray(arr).convert("P").save(tmp_path / "palette.gif")
    rgba = np.dstack([arr, np.zeros(arr.shape[:2], np.uint8)])  # fully transparent
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    Image.fromarray(arr).convert("CMYK").save(tmp_path / "cmyk.jpg")
    for name in ("grey.png", "palette.gif", "rgba.png", "cmyk.jpg"):
        img = load_rgb(tmp_path / name)
        assert img.mode == "RGB" and img.size == (64, 48), name
    # transparency is composited on white, not left black
    assert np.asarray(load_rgb(tmp_path / "rgba.png")).min() == 255
    grey = np.asarray(load_rgb(tmp_path / "grey.png"))
    assert (grey[..., 0] == grey[..., 1]).all() and grey[..., 0].max() > 200


def test_16bit_is_scaled_by_its_own_range(tmp_path):
    # a 12-bit scan stored in 16 bits: values 0..4095 must still use the full 8-bit range
    arr = (np.linspace(0, 4095, 64 * 48).reshape(48, 64)).astype(np.uint16)
    Image.fromarray(arr).save(tmp_path / "scan16.png")
    assert Image.open(tmp_path / "scan16.png").mode.startswith("I")
    out = np.asarray(load_rgb(tmp_path / "scan16.png"))
    assert out.dtype == np.uint8 and out.min() == 0 and out.max() == 255


def test_exif_orientation_is_applied(tmp_path):
    img = Image.fromarray(_gradient(64, 32))  # landscape
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW on display
    img.save(tmp_path / "rotated.jpg", exif=exif.tobytes())
    assert load_rgb(tmp_path / "rotated.jpg").size == (32, 64)


@pytest.mark.parametrize(
    "name,content,reason",
    [
        ("empty.jpg", b"", "empty"),
        ("x.jpg", b"this is a text file, not a picture\n", "not an image"),
    ],
)
def test_unreadable_files_raise_with_reason(tmp_path, name, content, reason):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(UnreadableImage, match=reason):
        load_rgb(path)


def test_truncated_jpeg_is_refused(tmp_path):
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (200, 200, 3), dtype=np.uint8)).save(buf, "JPEG")
    (tmp_path / "cut.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(UnreadableImage, match="truncated|corrupt"):
        load_rgb(tmp_path / "cut.jpg")


def test_jpeg_draft_keeps_at_least_the_requested_size(tmp_path):
    Image.fromarray(np.zeros((1200, 1600, 3), np.uint8)).save(tmp_path / "big.jpg")
    img = load_rgb(tmp_path / "big.jpg", draft_size=256)
    assert min(img.size) >= 256 and img.size[0] < 1600
