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

Limits that hold before anything large is allocated: the header's size (check_size) and frame count; a Deflated
Explicit VR Little Endian file is inflated in chunks, its elements before the pixel data up to HEADER_BYTES and
the whole up to what its header declares (and max_inflated); a compressed frame's own codestream header must
agree with Rows/Columns (runtime_codestream). Every step from stored values to pixels that fails on a file's
attributes raises DicomError naming the step, like a file that cannot be decoded.
"""
from __future__ import annotations

import io
import warnings
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image

WINDOW_CHOICES = ("auto", "none")
MAX_FRAMES = 10_000  # a header claiming more frames is refused before any pixel data is read
_CHUNK_PIXELS = 2**20  # grey frames are mapped to 8 bits this many pixels at a time
_COLOUR = ("RGB", "YBR_FULL", "YBR_FULL_422", "YBR_PARTIAL_420", "YBR_PARTIAL_422", "YBR_ICT", "YBR_RCT")
_INSTALL = "pip install 'tlearn[dicom]' (pydicom and its JPEG, JPEG-LS, JPEG 2000 and RLE decoders)"
_JPEG_EXTENDED = "1.2.840.10008.1.2.4.51"
_DEFLATED = "1.2.840.10008.1.2.1.99"
_RLE = "1.2.840.10008.1.2.5"
HEADER_BYTES = 16 * 2**20  # a deflated file's elements before its pixel data may inflate to this much
TRAILER_BYTES = 2**20  # and its elements after the pixel data (padding) to this much
MAX_BYTES_PER_PIXEL = 6  # 3 samples of 16 bits: the most one pixel of native pixel data takes
_INFLATE_CHUNK = 2**20  # compressed bytes read, and inflated bytes made, per step


def inflated_limit(max_pixels: int) -> int:
    """The most a deflated file may inflate to: its header, then one frame of max_pixels at MAX_BYTES_PER_PIXEL."""
    return HEADER_BYTES + max_pixels * MAX_BYTES_PER_PIXEL


DEFAULT_INFLATED_LIMIT = inflated_limit(100_000_000)  # tlearn.runtime.MAX_PIXELS


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


def _codestream():
    try:
        from . import runtime_codestream
    except ImportError:  # copied next to runtime.py: its sibling copy
        import runtime_codestream
    return runtime_codestream


class _Inflated:
    """The data set of a deflated file as a read-only stream, inflated in chunks as it is read and never past
    `limit` bytes (_TooMuch then): a small file cannot make pydicom allocate gigabytes of zeros."""

    def __init__(self, raw, limit: int):
        self.raw, self.limit = raw, limit
        self.data = bytearray()
        self.pos = 0
        self.done = False
        self._z = zlib.decompressobj(-zlib.MAX_WBITS)

    def _fill(self, upto: int) -> None:
        try:
            self._inflate(upto)
        except BaseException:  # the stream is of no more use: free its buffer now, not when a traceback goes
            self.close()
            raise

    def _inflate(self, upto: int) -> None:
        while len(self.data) < upto and not self.done:
            room = self.limit + 1 - len(self.data)
            if room <= 0:
                raise _TooMuch(len(self.data))
            chunk = self._z.unconsumed_tail or self.raw.read(_INFLATE_CHUNK)
            if not chunk:
                self.data += self._z.flush()
                self.done = True
            else:
                self.data += self._z.decompress(chunk, min(room, _INFLATE_CHUNK))
                self.done = self._z.eof
        if len(self.data) > self.limit:
            raise _TooMuch(len(self.data))

    def read(self, n: int = -1) -> bytes:
        self._fill(self.limit + 1 if n is None or n < 0 else self.pos + n)
        end = len(self.data) if n is None or n < 0 else self.pos + n
        out = bytes(self.data[self.pos:end])
        self.pos += len(out)
        return out

    def seek(self, offset: int, whence: int = 0) -> int:
        if whence == 2:
            self._fill(self.limit + 1)
        self.pos = max(0, offset + (0, self.pos, len(self.data))[whence])
        return self.pos

    def tell(self) -> int:
        return self.pos

    def close(self) -> None:
        self.data = bytearray()
        self.done = True

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _TooMuch(Exception):
    pass


def read_header(source: bytes | str | Path, force: bool = False, max_inflated: int = DEFAULT_INFLATED_LIMIT):
    """The dataset without its pixel data; force reads a file without the 128-byte preamble and 'DICM'.

    A deflated file's elements are inflated only up to its pixel data, and at most HEADER_BYTES of them."""
    return _read(source, force, max_inflated)[0]


def _read(source, force: bool, max_inflated: int) -> tuple:
    """(header dataset, the deflated file's _Inflated stream positioned at its pixel data, or None)."""
    pydicom = _pydicom()
    from pydicom import filereader

    try:
        with _open(source) as f, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pydicom warns about odd but readable values; they are not errors
            filereader.read_preamble(f, force)
            meta = filereader._read_file_meta_info(f)  # what dcmread reads first (pydicom's pixels module too)
            if str(meta.get("TransferSyntaxUID", "")) == _DEFLATED:
                return _read_deflated(f, meta, max_inflated)
            f.seek(0)
            ds = pydicom.dcmread(f, stop_before_pixels=True, force=force)
    except DicomError:
        raise
    except FileNotFoundError as exc:
        raise DicomError(f"cannot read file: {exc.strerror or exc}", "not_image") from None
    except pydicom.errors.InvalidDicomError as exc:
        raise DicomError(f"not a DICOM file ({exc})", "not_image") from None
    except (MemoryError, OverflowError) as exc:
        raise DicomError(f"DICOM header too large to read ({type(exc).__name__})", "too_large") from None
    except Exception as exc:  # pydicom raises many types on a damaged header
        raise DicomError(f"corrupt DICOM header: {type(exc).__name__}: {_one_line(exc)}", "corrupt") from None
    return _with_image(ds), None


def _read_deflated(f, meta, max_inflated: int) -> tuple:
    from pydicom.filereader import _at_pixel_data, read_dataset

    stream = _Inflated(f, min(HEADER_BYTES, max_inflated))
    try:
        ds = read_dataset(stream, is_implicit_VR=False, is_little_endian=True, stop_when=_at_pixel_data)
    except _TooMuch:
        raise DicomError(f"deflated DICOM file whose elements before the pixel data inflate past {HEADER_BYTES} "
                         "bytes: refused as a decompression bomb", "too_large") from None
    except zlib.error as exc:
        raise DicomError(f"corrupt deflated DICOM data: {_one_line(exc)}", "corrupt") from None
    ds.file_meta = meta
    return _with_image(ds), stream


def _with_image(ds):
    if "Rows" not in ds or "Columns" not in ds:
        kind = ds.get("Modality", "") or ds.get("SOPClassUID", "")
        raise DicomError(f"DICOM file without an image (no Rows/Columns; {kind or 'unknown type'}): nothing to "
                         "classify", "not_image")
    return ds


def _transfer_syntax(ds) -> str:
    meta = getattr(ds, "file_meta", None)
    return str(meta.get("TransferSyntaxUID", "")) if meta is not None else ""


def frame_count(ds) -> int:
    try:
        return max(1, int(ds.get("NumberOfFrames", 1) or 1))
    except (TypeError, ValueError):
        return 1


def image_size(ds) -> tuple[int, int]:
    """(width, height) of one frame."""
    return int(ds.Columns), int(ds.Rows)


def decode_dicom(source: bytes | str | Path, window: str | tuple[float, float] = "auto", force: bool = False,
                 check_size: Callable[[int, int], None] | None = None,
                 max_inflated: int = DEFAULT_INFLATED_LIMIT) -> Image.Image:
    """A DICOM file or its bytes -> 'L' or 'RGB' image of the middle frame; DicomError with a reason otherwise.

    check_size(width, height) runs on the header's size before any pixel data is decoded (it raises to refuse);
    max_inflated: the most a deflated file may inflate to (inflated_limit of the pixel limit).
    """
    window = parse_window(window) if isinstance(window, str) else window
    ds, inflated = _read(source, force, max_inflated)
    try:
        return _to_image(source, ds, inflated, window, check_size, max_inflated)
    finally:  # a refused file's inflated bytes are freed now, even while a traceback still refers to them
        if inflated is not None:
            inflated.close()


def _to_image(source, ds, inflated: _Inflated | None, window, check_size, max_inflated: int) -> Image.Image:
    with _step("header"):
        width, height = image_size(ds)
        frames = frame_count(ds)
        photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip().upper()
    if width < 1 or height < 1:
        raise DicomError(f"DICOM image of {width}x{height} pixels", "corrupt")
    if check_size is not None:
        check_size(width, height)
    if frames > MAX_FRAMES:
        raise DicomError(f"DICOM file with {frames} frames; the limit is {MAX_FRAMES}", "too_large")
    if photometric not in ("MONOCHROME1", "MONOCHROME2", "PALETTE COLOR", *_COLOUR):
        raise DicomError(f"DICOM photometric interpretation {photometric!r} is not supported (tlearn reads "
                         "MONOCHROME1/2, RGB, YBR and PALETTE COLOR)", "not_image")
    index = frames // 2 if frames > 1 else None
    if inflated is not None:
        arr = _decode_frame(lambda: _inflate_rest(inflated, ds, max_inflated), ds, index,
                            {"transfer_syntax_uid": _EXPLICIT_LE})
    else:
        _check_codestream(source, ds, index or 0, frames)
        arr = _decode_frame(lambda: _open(source), ds, index)
    if photometric in ("MONOCHROME1", "MONOCHROME2"):
        if arr.ndim != 2:
            raise DicomError(f"DICOM {photometric} image decoded to shape {arr.shape}", "corrupt")
        grey = to_grey8(arr, ds, window)
        return Image.fromarray(grey, mode="L")
    if photometric == "PALETTE COLOR":
        return Image.fromarray(_palette_to_rgb(arr, ds), mode="RGB")
    if arr.ndim != 3 or arr.shape[-1] != 3:
        raise DicomError(f"DICOM {photometric} image decoded to shape {arr.shape}", "corrupt")
    with _step("colour scaling (Bits Stored)"):
        return Image.fromarray(_scale_colour(arr, int(ds.get("BitsStored", 8) or 8)), mode="RGB")


_EXPLICIT_LE = "1.2.840.10008.1.2.1"


@contextmanager
def _step(name: str) -> Iterator[None]:
    """A step from stored values to pixels: what it raises on a file's attributes becomes DicomError naming it."""
    try:
        yield
    except DicomError:
        raise
    except MemoryError:
        raise DicomError(f"DICOM {name}: too large to compute", "too_large") from None
    except Exception as exc:  # OverflowError, struct.error, numpy's type errors on a malformed attribute...
        raise DicomError(f"DICOM {name} cannot be applied ({_type_name(exc)}: {_one_line(exc)})",
                         "corrupt") from None


def _type_name(exc: Exception) -> str:
    """struct.error rather than error; ValueError as it is."""
    kind = type(exc)
    return kind.__name__ if kind.__module__ == "builtins" else f"{kind.__module__.split('.')[0]}.{kind.__name__}"


def _pixel_bytes(ds, frames: int) -> int:
    """Bytes of native pixel data the header declares for all frames."""
    with _step("header"):
        bits = int(ds.get("BitsAllocated", 16) or 16)
        samples = int(ds.get("SamplesPerPixel", 1) or 1)
        rows, cols = int(ds.Rows), int(ds.Columns)
    return -(-rows * cols * frames * samples * max(bits, 1) // 8)


def _inflate_rest(stream: _Inflated, ds, max_inflated: int) -> _Inflated:
    """The deflated file's whole data set, inflated up to what its header declares (never past max_inflated)."""
    frames = frame_count(ds)
    declared = _pixel_bytes(ds, frames)
    if stream.pos + declared > max_inflated:
        raise DicomError(f"deflated DICOM file of {frames} frame(s) of {ds.Columns}x{ds.Rows} would inflate to "
                         f"{stream.pos + declared} bytes; the limit is {max_inflated} (one frame at the pixel "
                         "limit): store it uncompressed or with a compressed transfer syntax", "too_large")
    stream.limit = stream.pos + declared + TRAILER_BYTES
    try:
        stream.read()
    except _TooMuch:
        raise DicomError(f"deflated DICOM file inflates past {stream.limit} bytes while its header declares "
                         f"{declared} bytes of pixel data: refused as a decompression bomb", "too_large") from None
    except zlib.error as exc:
        raise DicomError(f"corrupt deflated DICOM data: {_one_line(exc)}", "corrupt") from None
    stream.seek(0)
    return stream


def _check_codestream(source, ds, index: int, frames: int) -> None:
    """A compressed frame's own header read before decoding: its size must be the DICOM header's."""
    syntax = _transfer_syntax(ds)
    jpeg = syntax.startswith("1.2.840.10008.1.2.4.") and syntax.rsplit(".", 1)[1] in _CODESTREAM_SYNTAXES
    if not (jpeg or syntax == _RLE):
        return
    codestream = _codestream()
    frame = _frame_bytes(source, index, frames)
    width, height = image_size(ds)
    try:
        if jpeg:
            cw, ch = codestream.codestream_size(frame)
            if (cw, ch) != (width, height):
                raise codestream.CodestreamError(f"its codestream is {cw}x{ch} pixels while the DICOM header says "
                                                 f"{width}x{height} (Columns x Rows)")
        else:
            with _step("header"):
                segments = int(ds.get("SamplesPerPixel", 1) or 1) * max(1, int(ds.get("BitsAllocated", 8)) // 8)
            codestream.rle_segments(frame, segments, width * height)
    except codestream.CodestreamError as exc:
        raise DicomError(f"compressed DICOM frame refused before decoding: {exc}", "corrupt") from None


# JPEG 50, 51, 57, 70; JPEG-LS 80, 81; JPEG 2000 90-93; HTJ2K 201-203 (1.2.840.10008.1.2.4.N)
_CODESTREAM_SYNTAXES = frozenset({"50", "51", "57", "70", "80", "81", "90", "91", "92", "93", "201", "202", "203"})


def _frame_bytes(source, index: int, frames: int) -> bytes:
    """Frame `index` of encapsulated pixel data (all its fragments), read without decoding."""
    from pydicom.encaps import get_frame
    from pydicom.filereader import _at_pixel_data, _read_file_meta_info, read_dataset, read_preamble

    try:
        with _open(source) as f, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            read_preamble(f, True)
            _read_file_meta_info(f)
            read_dataset(f, is_implicit_VR=False, is_little_endian=True, stop_when=_at_pixel_data)
            head = f.read(12)  # tag, VR, 2 reserved bytes, length: 0xFFFFFFFF for encapsulated data
            if len(head) < 12 or head[8:12] != b"\xff\xff\xff\xff":
                raise DicomError("compressed DICOM file whose pixel data is not encapsulated", "corrupt")
            return get_frame(f, index, number_of_frames=frames)
    except DicomError:
        raise
    except MemoryError:
        raise DicomError("compressed DICOM frame too large to read", "too_large") from None
    except Exception as exc:
        raise DicomError(f"compressed DICOM pixel data cannot be read: {_one_line(exc)}", "corrupt") from None


def _decode_frame(open_pixels: Callable, ds, index: int | None, options: dict | None = None) -> np.ndarray:
    """Only the pixel data of frame `index` (None: the single frame) is decoded, from open_pixels()' stream."""
    from pydicom.pixels import pixel_array

    options = dict(options or {})
    meta = getattr(ds, "file_meta", None)
    if not options and (meta is None or "TransferSyntaxUID" not in meta):  # a bare data set: its encoding as read
        options["transfer_syntax_uid"] = _uid_of_encoding(ds)
    with open_pixels() as f, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
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
    """Stored grey values -> uint8: modality LUT, VOI, then MONOCHROME1 / INVERSE inversion, a band at a time.

    DicomError naming the step whose attributes cannot be applied (a garbage LUT, a slope that is not a number)."""
    from pydicom.pixels import apply_modality_lut

    h, w = arr.shape
    rows = max(1, _CHUNK_PIXELS // max(w, 1))
    bands = [(y, min(h, y + rows)) for y in range(0, h, rows)]
    modality_step = ("modality LUT (Modality LUT Sequence)" if "ModalityLUTSequence" in ds
                     else "modality LUT (Rescale Slope / Intercept)")

    def modality(y0: int, y1: int) -> np.ndarray:
        with _step(modality_step):
            values = np.asarray(apply_modality_lut(arr[y0:y1], ds), dtype=np.float64)
        if not np.isfinite(values).all():
            raise DicomError(f"DICOM {modality_step} gives values that are not finite numbers", "corrupt")
        return values

    voi_step = "VOI (window)" if isinstance(window, tuple) or window == "none" else _voi_step(ds)
    with _step(voi_step):
        voi = _voi(ds, window)
    if voi is None:  # the values' own range
        lo, hi = np.inf, -np.inf
        for y0, y1 in bands:
            band = modality(y0, y1)
            lo, hi = min(lo, float(band.min())), max(hi, float(band.max()))
        voi = lambda x: np.zeros_like(x) if hi <= lo else (x - lo) / (hi - lo)  # noqa: E731
    with _step("inversion (Photometric Interpretation / Presentation LUT Shape)"):
        invert = (str(ds.get("PhotometricInterpretation", "")).strip().upper() == "MONOCHROME1"
                  or str(ds.get("PresentationLUTShape", "")).strip().upper() == "INVERSE")
    out = np.empty((h, w), dtype=np.uint8)
    for y0, y1 in bands:
        values = modality(y0, y1)
        with _step(voi_step):
            unit = np.clip(np.nan_to_num(voi(values), nan=0.0), 0.0, 1.0)
        if invert:  # DX pairs MONOCHROME1 with INVERSE: either means one inversion, never two
            unit = 1.0 - unit
        out[y0:y1] = np.rint(unit * 255.0).astype(np.uint8)
    return out


def _voi_step(ds) -> str:
    with _step("VOI LUT Sequence"):
        has_lut = bool(ds.get("VOILUTSequence"))
    return "VOI LUT Sequence" if has_lut else "VOI window (Window Center / Width, VOI LUT Function)"


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
            data = np.frombuffer(data[:len(data) // np.dtype(dtype).itemsize * np.dtype(dtype).itemsize], dtype=dtype)
        lut = np.asarray([] if data is None else data, dtype=np.float64).ravel()
    except Exception as exc:
        raise DicomError(f"unreadable VOI LUT Sequence: {_one_line(exc)}", "corrupt") from None
    if not 1 <= bits <= 16 or not 0 <= n <= 65535:
        raise DicomError(f"VOI LUT Descriptor ({n}, {first}, {bits}) out of range: at most 65536 entries of 1 to 16 "
                         "bits", "corrupt")
    n = n or 65536  # 0 means 2**16 entries
    if lut.size == 0:
        raise DicomError("empty VOI LUT Sequence LUTData", "corrupt")
    lut = lut[:n]
    if not np.isfinite(lut).all() or lut.min() < 0:
        raise DicomError("VOI LUT Sequence LUTData holds values that are not non-negative numbers", "corrupt")
    top = float(2 ** max(bits, int(lut.max()).bit_length()) - 1) or 1.0

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

    with _step("palette colour lookup (PALETTE COLOR)"):
        rgb = np.asarray(apply_color_lut(arr, ds))
        return _scale_colour(rgb, 8 if rgb.dtype == np.uint8 else 16)


def _scale_colour(arr: np.ndarray, bits: int) -> np.ndarray:
    if arr.dtype == np.uint8 and bits <= 8:
        return np.ascontiguousarray(arr)
    top = float(2 ** max(bits, 1) - 1)
    return np.clip(np.rint(arr.astype(np.float64) * (255.0 / top)), 0, 255).astype(np.uint8)
