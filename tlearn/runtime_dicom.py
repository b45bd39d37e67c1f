"""DICOM files -> 8-bit grey or RGB PIL images, in the standard's order; numpy, Pillow and pydicom only.

Like tlearn.runtime (which calls it), this module imports nothing else from tlearn and never torch; copy it
next to runtime.py to read DICOM with a copied runtime. pydicom and its pixel-data plugins are imported only
when a DICOM file is read (`pip install 'tlearn[dicom]'`).

Grey images (MONOCHROME1/2), PS3.3 C.11 and C.7.6.3.1.2:
1. modality LUT: Modality LUT Sequence, or Rescale Slope/Intercept (e.g. CT stored values -> Hounsfield units);
2. VOI: the window (`auto`: the file's VOI LUT Sequence, else its first Window Center/Width with its VOI LUT
   Function; the values' own min..max when it has neither; `none`: always min..max; `C,W`: this window, linear);
3. MONOCHROME1 (or Presentation LUT Shape INVERSE) inverted, so that bright means dense as in MONOCHROME2.
Colour images (RGB, YBR_*, PALETTE COLOR) become RGB; windows do not apply to them.
Multi-frame files: the middle frame (index frames // 2), the only one decoded.
"""
from __future__ import annotations

import io
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

WINDOW_CHOICES = ("auto", "none")
MAX_FRAMES = 10_000  # a header claiming more frames is refused before any pixel data is read
_CHUNK_PIXELS = 2**20  # grey frames are mapped to 8 bits this many pixels at a time
_COLOUR = ("RGB", "YBR_FULL", "YBR_FULL_422", "YBR_PARTIAL_420", "YBR_PARTIAL_422", "YBR_ICT", "YBR_RCT")
_INSTALL = "pip install 'tlearn[dicom]' (pydicom and its JPEG, JPEG-LS, JPEG 2000 and RLE decoders)"
_JPEG_EXTENDED = "1.2.840.10008.1.2.4.51"


class DicomError(ValueError):
    """The DICOM file cannot be used; `kind` as tlearn.runtime.ImageError: not_image, corrupt or too_large."""

    def __init__(self, message: str, kind: str):
        super().__init__(message)
        self.kind = kind


def parse_window(spec: str) -> tuple[float, float] | str:
    """'auto', 'none' or 'CENTER,WIDTH' (width > 0) -> that string or (center, width); ValueError otherwise."""
    text = str(spec).strip().lower()
    if text in WINDOW_CHOICES:
        return text
    parts = text.split(",")
    try:
        center, width = (float(p) for p in parts)
    except ValueError:
        raise ValueError(f"--dicom-window must be auto, none or CENTER,WIDTH (e.g. 40,400), not {spec!r}") from None
    if not (np.isfinite(center) and np.isfinite(width)) or width < 1:
        raise ValueError(f"--dicom-window {spec!r}: the width must be at least 1 and both numbers finite")
    return center, width


def _pydicom():
    try:
        import pydicom
        import pydicom.pixels  # noqa: F401 - the decoders' entry point
    except ImportError:
        raise DicomError(f"a DICOM file, and reading DICOM needs pydicom: {_INSTALL}", "not_image") from None
    return pydicom


def _open(source: bytes | str | Path):
    return io.BytesIO(source) if isinstance(source, (bytes, bytearray, memoryview)) else open(source, "rb")


def read_header(source: bytes | str | Path, force: bool = False):
    """The dataset without its pixel data; force reads a file without the 128-byte preamble and 'DICM'."""
    pydicom = _pydicom()
    try:
        with _open(source) as f, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pydicom warns about odd but readable values; they are not errors
            ds = pydicom.dcmread(f, stop_before_pixels=True, force=force)
    except FileNotFoundError as exc:
        raise DicomError(f"cannot read file: {exc.strerror or exc}", "not_image") from None
    except pydicom.errors.InvalidDicomError as exc:
        raise DicomError(f"not a DICOM file ({exc})", "not_image") from None
    except (MemoryError, OverflowError) as exc:
        raise DicomError(f"DICOM header too large to read ({type(exc).__name__})", "too_large") from None
    except Exception as exc:  # pydicom raises many types on a damaged header
        raise DicomError(f"corrupt DICOM header: {type(exc).__name__}: {_one_line(exc)}", "corrupt") from None
    if "Rows" not in ds or "Columns" not in ds:
        kind = ds.get("Modality", "") or ds.get("SOPClassUID", "")
        raise DicomError(f"DICOM file without an image (no Rows/Columns; {kind or 'unknown type'}): nothing to "
                         "classify", "not_image")
    return ds


def frame_count(ds) -> int:
    try:
        return max(1, int(ds.get("NumberOfFrames", 1) or 1))
    except (TypeError, ValueError):
        return 1


def image_size(ds) -> tuple[int, int]:
    """(width, height) of one frame."""
    return int(ds.Columns), int(ds.Rows)


def decode_dicom(source: bytes | str | Path, window: str | tuple[float, float] = "auto", force: bool = False,
                 check_size: Callable[[int, int], None] | None = None) -> Image.Image:
    """A DICOM file or its bytes -> 'L' or 'RGB' image of the middle frame; DicomError with a reason otherwise.

    check_size(width, height) runs on the header's size before any pixel data is decoded (it raises to refuse).
    """
    window = parse_window(window) if isinstance(window, str) else window
    ds = read_header(source, force=force)
    width, height = image_size(ds)
    if width < 1 or height < 1:
        raise DicomError(f"DICOM image of {width}x{height} pixels", "corrupt")
    if check_size is not None:
        check_size(width, height)
    frames = frame_count(ds)
    if frames > MAX_FRAMES:
        raise DicomError(f"DICOM file with {frames} frames; the limit is {MAX_FRAMES}", "too_large")
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip().upper()
    if photometric not in ("MONOCHROME1", "MONOCHROME2", "PALETTE COLOR", *_COLOUR):
        raise DicomError(f"DICOM photometric interpretation {photometric!r} is not supported (tlearn reads "
                         "MONOCHROME1/2, RGB, YBR and PALETTE COLOR)", "not_image")
    arr = _decode_frame(source, ds, frames // 2 if frames > 1 else None)
    if photometric in ("MONOCHROME1", "MONOCHROME2"):
        if arr.ndim != 2:
            raise DicomError(f"DICOM {photometric} image decoded to shape {arr.shape}", "corrupt")
        grey = to_grey8(arr, ds, window)
        return Image.fromarray(grey, mode="L")
    if photometric == "PALETTE COLOR":
        return Image.fromarray(_palette_to_rgb(arr, ds), mode="RGB")
    if arr.ndim != 3 or arr.shape[-1] != 3:
        raise DicomError(f"DICOM {photometric} image decoded to shape {arr.shape}", "corrupt")
    return Image.fromarray(_scale_colour(arr, int(ds.get("BitsStored", 8) or 8)), mode="RGB")


def _decode_frame(source, ds, index: int | None) -> np.ndarray:
    """Only the pixel data of frame `index` (None: the single frame) is decoded."""
    from pydicom.pixels import pixel_array

    options = {}
    meta = getattr(ds, "file_meta", None)
    if meta is None or "TransferSyntaxUID" not in meta:  # a bare data set: its encoding as read
        options["transfer_syntax_uid"] = _uid_of_encoding(ds)
    try:
        with _open(source) as f, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return pixel_array(f, index=index, **options)
    except (MemoryError, OverflowError) as exc:
        raise DicomError(f"DICOM pixel data too large to decode ({type(exc).__name__})", "too_large") from None
    except Exception as exc:  # every plugin failed, truncated data, missing decoder
        raise DicomError(_decode_failure(ds, exc), "corrupt") from None


def _uid_of_encoding(ds) -> str:
    from pydicom import uid

    implicit, little = getattr(ds, "original_encoding", (True, True))
    if implicit:
        return uid.ImplicitVRLittleEndian
    return uid.ExplicitVRLittleEndian if little else uid.ExplicitVRBigEndian


def _decode_failure(ds, exc: Exception) -> str:
    meta = getattr(ds, "file_meta", None)
    uid = str(meta.get("TransferSyntaxUID", "")) if meta is not None else ""
    name = getattr(meta.get("TransferSyntaxUID", None), "name", uid) if meta is not None else uid
    bits = ds.get("BitsStored", "?")
    text = f"DICOM pixel data cannot be decoded ({name}, {bits}-bit): {_one_line(exc)}"
    if uid == _JPEG_EXTENDED and str(bits) != "8" and not _has_module("libjpeg"):
        text += ("; 12-bit JPEG Extended needs pylibjpeg-libjpeg, which is GPL-3 licensed: "
                 "pip install 'tlearn[dicom-gpl]'")
    elif "missing dependencies" in text:
        text += f"; {_INSTALL}"
    return text[:600]


def _has_module(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def to_grey8(arr: np.ndarray, ds, window: str | tuple[float, float]) -> np.ndarray:
    """Stored grey values -> uint8: modality LUT, VOI, then MONOCHROME1 / INVERSE inversion, a band at a time."""
    from pydicom.pixels import apply_modality_lut

    h, w = arr.shape
    rows = max(1, _CHUNK_PIXELS // max(w, 1))
    bands = [(y, min(h, y + rows)) for y in range(0, h, rows)]

    def modality(y0: int, y1: int) -> np.ndarray:
        return np.asarray(apply_modality_lut(arr[y0:y1], ds), dtype=np.float64)

    voi = _voi(ds, window)
    if voi is None:  # the values' own range
        lo, hi = np.inf, -np.inf
        for y0, y1 in bands:
            band = modality(y0, y1)
            lo, hi = min(lo, float(band.min())), max(hi, float(band.max()))
        voi = lambda x: np.zeros_like(x) if hi <= lo else (x - lo) / (hi - lo)  # noqa: E731
    invert = (str(ds.get("PhotometricInterpretation", "")).strip().upper() == "MONOCHROME1"
              or str(ds.get("PresentationLUTShape", "")).strip().upper() == "INVERSE")
    out = np.empty((h, w), dtype=np.uint8)
    for y0, y1 in bands:
        unit = np.clip(voi(modality(y0, y1)), 0.0, 1.0)
        if invert:  # DX pairs MONOCHROME1 with INVERSE: either means one inversion, never two
            unit = 1.0 - unit
        out[y0:y1] = np.rint(unit * 255.0).astype(np.uint8)
    return out


def _voi(ds, window: str | tuple[float, float]) -> Callable[[np.ndarray], np.ndarray] | None:
    """Modality values -> [0, 1] as the window asks; None for the values' own min..max."""
    if isinstance(window, tuple):
        return _linear(*window)
    if window == "none":
        return None
    seq = ds.get("VOILUTSequence")
    if seq:
        return _voi_lut(seq[0])
    center, width = _first(ds.get("WindowCenter")), _first(ds.get("WindowWidth"))
    if center is None or width is None or width <= 0:
        return None
    function = str(ds.get("VOILUTFunction", "LINEAR") or "LINEAR").strip().upper()
    if function == "SIGMOID":
        return lambda x: 1.0 / (1.0 + np.exp(-4.0 * (x - center) / width))
    if function == "LINEAR_EXACT":
        return lambda x: (x - center) / width + 0.5
    if width < 1:  # LINEAR needs width >= 1 (PS3.3 C.11.2.1.2.1)
        return None
    return _linear(center, width)


def _linear(center: float, width: float) -> Callable[[np.ndarray], np.ndarray]:
    """PS3.3 C.11.2.1.2.1 LINEAR: center - 0.5 is the middle, width - 1 the ramp; clipped outside."""
    if width <= 1:
        return lambda x: (x > center - 0.5).astype(np.float64)
    return lambda x: (x - (center - 0.5)) / (width - 1) + 0.5


def _voi_lut(item) -> Callable[[np.ndarray], np.ndarray]:
    """A VOI LUT Sequence item: input values first..first+n-1 index the LUT (clamped), output / its bit range."""
    try:
        n, first, bits = (int(v) for v in item.LUTDescriptor)
        data = item.LUTData
        if isinstance(data, (bytes, bytearray)):
            dtype = "<u1" if bits <= 8 and len(data) == (n or 65536) else "<u2"
            data = np.frombuffer(data, dtype=dtype)
        lut = np.asarray(data, dtype=np.float64).ravel()
    except Exception as exc:
        raise DicomError(f"unreadable VOI LUT Sequence: {_one_line(exc)}", "corrupt") from None
    n = n or 65536  # 0 means 2**16 entries
    if lut.size == 0:
        raise DicomError("empty VOI LUT Sequence LUTData", "corrupt")
    lut = lut[:n]
    top = float(2 ** max(bits, int(lut.max()).bit_length()) - 1)

    def apply(x: np.ndarray) -> np.ndarray:
        index = np.clip(np.rint(x) - first, 0, lut.size - 1).astype(np.int64)
        return lut[index] / top

    return apply


def _first(value) -> float | None:
    """First value of a possibly multi-valued DS element."""
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        value = value[0] if len(value) else None
    try:
        return None if value is None or value == "" else float(value)
    except (TypeError, ValueError):
        return None


def _palette_to_rgb(arr: np.ndarray, ds) -> np.ndarray:
    from pydicom.pixels import apply_color_lut

    try:
        rgb = np.asarray(apply_color_lut(arr, ds))
    except Exception as exc:
        raise DicomError(f"DICOM palette cannot be applied: {_one_line(exc)}", "corrupt") from None
    bits = 8 if rgb.dtype == np.uint8 else 16
    return _scale_colour(rgb, bits)


def _scale_colour(arr: np.ndarray, bits: int) -> np.ndarray:
    if arr.dtype == np.uint8 and bits <= 8:
        return np.ascontiguousarray(arr)
    top = float(2 ** max(bits, 1) - 1)
    return np.clip(np.rint(arr.astype(np.float64) * (255.0 / top)), 0, 255).astype(np.uint8)
