"""Classify images with an exported tlearn ONNX model using onnxruntime, numpy and Pillow alone.

This module imports nothing else from tlearn (and never torch), so it also works as a single file copied
next to a model on a machine without PyTorch:

    from tlearn.runtime import Classifier            # or: from runtime import Classifier (copied file)
    clf = Classifier("model.onnx")
    for p in clf.predict(["bee.jpg", pil_image, numpy_array]):   # or one of them, or a folder
        print(p.source, p.predicted, p.probability)

    python -m tlearn.runtime model.onnx IMAGE ...     # one line per image: path, predicted, probability

The exported graph takes a uint8 RGB batch (N, S, S, 3) and normalises itself; this module only decodes the
image and does the eval resize + centre crop, with the same geometry as tlearn.data.transforms.resize_crop.
tlearn's own decoding (tlearn.data.images.load_rgb) is this module's decode_image, limits included.
DICOM files are decoded by runtime_dicom.py (copy it and runtime_codestream.py too; it needs pydicom), with the run's
DICOM window.
"""
from __future__ import annotations

import io
import json
import sys
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

METADATA_PREFIX = "tlearn."

# Limits on what is decoded, one place for tlearn's own decoding (tlearn.data.images) and this runtime.
# Pillow decoders that may open an input (JPEG covers MPO): never EPS, whose decoding runs Ghostscript.
IMAGE_FORMATS = ("JPEG", "PNG", "GIF", "BMP", "TIFF", "WEBP", "PPM")
MAX_PIXELS = 100_000_000  # refused above this, from the header, before anything is decoded
MAX_ASPECT_RATIO = 100  # long side / short side; a centre crop of a longer strip shows under 1% of it
SHRINK_ABOVE_PIXELS = 2**24  # larger decoded images are box-reduced towards the target size before conversion
_CHUNK_PIXELS = 2**20  # high-depth images are windowed this many pixels at a time
_RESAMPLE = {"bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC,
             "nearest": Image.Resampling.NEAREST}
_ORIENTATION = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
                4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270,
                7: Image.Transpose.TRANSVERSE, 8: Image.Transpose.ROTATE_90}


DICOM_EXTENSIONS = (".dcm", ".dicom")
# File names taken as images when a folder is listed (DICOM files are also found by their content).
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".gif", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm",
                              ".pbm", ".jfif", *DICOM_EXTENSIONS})
DEFAULT_DICOM_WINDOW = "auto"  # the file's own VOI (LUT or window), else the values' min..max


class ImageError(ValueError):
    """The input is not a usable image; `kind` says why: not_image, corrupt or too_large."""

    def __init__(self, message: str, kind: str):
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class Preprocess:
    """The eval geometry a model was trained with: shorter side to resize_size, centre crop input_size."""

    input_size: int
    crop_pct: float = 0.875
    interpolation: str = "bicubic"
    dicom_window: str = DEFAULT_DICOM_WINDOW  # auto, none or CENTER,WIDTH (see runtime_dicom)

    @property
    def resize_size(self) -> int:
        return int(round(self.input_size / self.crop_pct))

    def resize_crop(self, img: Image.Image) -> Image.Image:
        """Same output as torchvision Resize(resize_size) + CenterCrop(input_size) on a PIL image."""
        return resize_crop(img, self.resize_size, self.input_size, self.interpolation)

    def to_array(self, img: Image.Image) -> np.ndarray:
        """Decoded RGB image -> uint8 (S, S, 3), what the exported graph takes."""
        return np.asarray(self.resize_crop(img), dtype=np.uint8)


def resized_size(width: int, height: int, resize: int) -> tuple[int, int]:
    """(w, h) after scaling the shorter side to `resize`, rounded as torchvision's Resize rounds."""
    short, long = (width, height) if width <= height else (height, width)
    new_short, new_long = resize, int(resize * long / short)
    return (new_short, new_long) if width <= height else (new_long, new_short)


def square_size(resize: int, size: int) -> int:
    """Side of the centred square resize_crop resamples: <= resize, >= size, differing from size by 4k (so the
    size crop sits on whole pixels of it; tlearn's decoded-image cache stores these squares)."""
    return size + 4 * max((resize - size) // 4, 0)


def resize_crop(img: Image.Image, resize: int, size: int, interpolation: str = "bicubic") -> Image.Image:
    """Shorter side to `resize`, centre crop `size` x `size` (torchvision Resize + CenterCrop on a PIL image).

    Only the source box under the centred square_size(resize, size) square is resampled, with the same scale
    and filter (Pillow's filter still reads the pixels around the box), and the crop taken from it: a fraction
    of the work, memory of about size x size pixels even for a thin strip, and the same pixels as a crop of
    the cached square. Pillow runs its two passes in the other order on a box, so a pixel can differ from the
    whole resize where the bicubic filter overshoots: at most 2 grey levels on photos (mean 0.001 on flowers).
    """
    w, h = img.size
    new_w, new_h = resized_size(w, h, resize)
    if (new_w, new_h) == (w, h):
        return _centre_crop(img, size)
    square = _crop_in_source(img, (new_w, new_h), square_size(resize, size), _RESAMPLE[interpolation])
    return _centre_crop(square, size)


def _centre_crop(img: Image.Image, size: int) -> Image.Image:
    w, h = img.size
    if w < size or h < size:  # pad with black like torchvision's CenterCrop, then crop
        canvas = Image.new(img.mode, (max(size, w), max(size, h)))
        canvas.paste(img, ((max(size, w) - w) // 2, (max(size, h) - h) // 2))
        img, w, h = canvas, canvas.width, canvas.height
    top, left = int(round((h - size) / 2.0)), int(round((w - size) / 2.0))
    return img.crop((left, top, left + size, top + size))


def _crop_in_source(img: Image.Image, new_size: tuple[int, int], size: int, resample) -> Image.Image:
    """The centre crop of img resized to new_size, resampling only the source box under the crop."""
    (w, h), (new_w, new_h) = img.size, new_size
    out_w, out_h = min(size, new_w), min(size, new_h)
    left, top = int(round((new_w - out_w) / 2.0)), int(round((new_h - out_h) / 2.0))
    sx, sy = w / new_w, h / new_h
    box = (left * sx, top * sy, min(w, (left + out_w) * sx), min(h, (top + out_h) * sy))
    return _centre_crop(img.resize((out_w, out_h), resample=resample, box=box), size)


def to_rgb(img: Image.Image) -> Image.Image:
    """Any decoded mode -> 8-bit RGB (transparency on white; 16-bit/float scaled by their own range)."""
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
    """Scale a 16/32-bit or float image to 8 bits by its own min..max range, a band of rows at a time."""
    w, h = img.size
    rows = max(1, _CHUNK_PIXELS // max(w, 1))
    bands = [(y, min(h, y + rows)) for y in range(0, h, rows)]

    def band(y0: int, y1: int) -> np.ndarray:
        return np.asarray(img.crop((0, y0, w, y1)), dtype=np.float64)

    lo, hi = np.inf, -np.inf
    for y0, y1 in bands:
        b = band(y0, y1)
        lo, hi = min(lo, float(np.min(b))), max(hi, float(np.max(b)))
    grey = np.empty((h, w), dtype=np.uint8)
    for y0, y1 in bands:
        b = band(y0, y1)
        scaled = np.zeros_like(b) if hi <= lo else (b - lo) * (255.0 / (hi - lo))
        grey[y0:y1] = np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
    return Image.fromarray(grey, mode="L").convert("RGB")


def _shrink(img: Image.Image, target: int) -> Image.Image:
    """Box-reduce a decoded image by an integer factor that keeps its shorter side >= target (cf. JPEG draft)."""
    w, h = img.size
    factor = min(w, h) // max(1, target)
    if factor < 2:
        return img
    if img.mode.startswith("I;16"):  # Image.reduce does not take 16-bit modes; a box resize is the same filter
        return img.resize((-(-w // factor), -(-h // factor)), Image.Resampling.BOX)
    if img.mode not in ("L", "LA", "RGB", "RGBA", "I", "F", "CMYK"):  # palette, bilevel, YCbCr...: reduce RGB
        img = to_rgb(img)
    return img.reduce(factor)


def _orient(img: Image.Image, orientation) -> Image.Image:
    """img turned upright by its EXIF orientation (ImageOps.exif_transpose would also copy an upright image)."""
    return img.transpose(_ORIENTATION[orientation]) if orientation in _ORIENTATION else img


def check_size(width: int, height: int, max_pixels: int = MAX_PIXELS) -> None:
    """ImageError (too_large) for more pixels than max_pixels or a longer strip than MAX_ASPECT_RATIO."""
    if width * height > max_pixels:
        raise ImageError(f"image too large ({width}x{height} pixels; the limit is {max_pixels} pixels): "
                         "refused as a possible decompression bomb", "too_large")
    if max(width, height) > MAX_ASPECT_RATIO * min(width, height):
        raise ImageError(f"image too thin ({width}x{height} pixels; the longest side may be at most "
                         f"{MAX_ASPECT_RATIO} times the shortest)", "too_large")


def _dicom_module():
    try:
        from . import runtime_dicom
    except ImportError:  # this file copied alone next to a model: its sibling copy
        import runtime_dicom
    return runtime_dicom


def looks_like_dicom(data: bytes | str | Path) -> bool:
    """A DICOM Part 10 file ('DICM' after its 128-byte preamble), or a file named *.dcm / *.dicom."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data[128:132]) == b"DICM"
    path = Path(data)
    if path.suffix.lower() in DICOM_EXTENSIONS:
        return True
    try:
        with open(path, "rb") as f:
            return f.read(132)[128:132] == b"DICM"
    except OSError:
        return False


def _dicom_call(fn):
    """Run a runtime_dicom call, turning its DicomError, and anything pydicom raises on a malformed file that
    runtime_dicom did not name, into ImageError: one such file is skipped with its reason, never a crash."""
    dicom = _dicom_module()
    try:
        return fn(dicom)
    except dicom.DicomError as exc:
        raise ImageError(str(exc), exc.kind) from None
    except ImageError:  # check_size's refusal
        raise
    except MemoryError:
        raise ImageError("DICOM file too large to read (MemoryError)", "too_large") from None
    except Exception as exc:
        text = " ".join(str(exc).split()) or type(exc).__name__
        raise ImageError(f"unreadable DICOM file ({type(exc).__name__}: {text})"[:600], "corrupt") from None


def image_size(data: bytes | str | Path) -> tuple[int, int]:
    """(width, height) from the header alone; ImageError when it is not an image tlearn reads."""
    if looks_like_dicom(data):
        return _dicom_call(lambda d: d.image_size(d.read_header(data, force=True)))
    source = io.BytesIO(data) if isinstance(data, (bytes, bytearray, memoryview)) else data
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(source, formats=IMAGE_FORMATS) as img:
                return img.size
    except (Image.DecompressionBombError, OverflowError, MemoryError) as exc:
        raise ImageError(f"refused as a decompression bomb: {exc}", "too_large") from None
    except Exception:
        raise ImageError(_NOT_IMAGE, "not_image") from None


_NOT_IMAGE = f"not an image (unknown or corrupt format; tlearn reads {', '.join(IMAGE_FORMATS)} and DICOM)"


def decode_dicom(data: bytes | str | Path, draft_size: int | None = None, max_pixels: int = MAX_PIXELS,
                 window: str = DEFAULT_DICOM_WINDOW) -> Image.Image:
    """A DICOM file or its bytes -> 8-bit RGB (see runtime_dicom), with decode_image's limits and draft."""
    img = _dicom_call(lambda d: d.decode_dicom(data, window, force=True,
                                               check_size=lambda w, h: check_size(w, h, max_pixels),
                                               max_inflated=d.inflated_limit(max_pixels)))
    if draft_size and img.width * img.height > SHRINK_ABOVE_PIXELS:
        img = _shrink(img, draft_size)
    return to_rgb(img)


def decode_image(data: bytes | str | Path, draft_size: int | None = None,
                 max_pixels: int = MAX_PIXELS, dicom_window: str = DEFAULT_DICOM_WINDOW) -> Image.Image:
    """Bytes or a file -> oriented 8-bit RGB image; ImageError (with a reason and kind) otherwise.

    The pixel count and aspect ratio are checked from the header before anything is decoded (decompression
    bombs). draft_size: the size the caller will resize the shorter side to; JPEGs are decoded at a reduced
    scale and other images over SHRINK_ABOVE_PIXELS box-reduced, both keeping the shorter side >= draft_size.
    DICOM (by content, or a .dcm/.dicom name) is read with dicom_window: auto, none or CENTER,WIDTH.
    """
    source = io.BytesIO(data) if isinstance(data, (bytes, bytearray, memoryview)) else data
    if isinstance(source, io.BytesIO) and not source.getbuffer().nbytes:
        raise ImageError("empty body (0 bytes)", "not_image")
    if looks_like_dicom(data):
        return decode_dicom(data, draft_size, max_pixels, dicom_window)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # max_pixels below is the limit
            with Image.open(source, formats=IMAGE_FORMATS) as img:
                check_size(img.width, img.height, max_pixels)
                if draft_size and img.format == "JPEG":
                    img.draft("RGB", (draft_size, draft_size))
                img.load()
                orientation = img.getexif().get(0x0112)
                if draft_size and img.width * img.height > SHRINK_ABOVE_PIXELS:
                    img = _shrink(img, draft_size)
                return to_rgb(_orient(img, orientation))
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError(_NOT_IMAGE, "not_image") from None
    except Image.DecompressionBombError as exc:
        raise ImageError(f"refused as a decompression bomb: {exc}", "too_large") from None
    except (MemoryError, OverflowError) as exc:
        raise ImageError(f"too large to decode ({type(exc).__name__})", "too_large") from None
    except FileNotFoundError as exc:
        raise ImageError(f"cannot read file: {exc.strerror or exc}", "not_image") from None
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise ImageError(f"corrupt or truncated image: {exc}", "corrupt") from None


# --- images as people hold them: paths, folders, bytes, PIL images, numpy arrays, or lists of them ---

def array_to_image(array, name: str = "<array>") -> Image.Image:
    """A numpy image -> the PIL image that saving it as PNG and opening the file again gives (L, RGB or RGBA).

    Shapes: H x W (grey), H x W x 1 (grey), H x W x 3 (RGB), H x W x 4 (RGBA, composited on white when
    predicted, as a PNG with transparency is). uint8 values are taken as they are; float values must lie in
    [0, 1], 1.0 being 255 (each value is rounded to the nearest of the 256 levels). Anything else is refused.
    """
    a = np.asarray(array)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (3, 4)) or 0 in a.shape:
        raise ImageError(f"{name}: an image array is H x W (grey) or H x W x C with C 1, 3 or 4 (grey, RGB, RGBA); "
                         f"got shape {a.shape}", "not_image")
    if a.dtype.kind == "f":
        lo, hi = (float(np.min(a)), float(np.max(a))) if np.isfinite(a).all() else (float("nan"),) * 2
        if not (0.0 <= lo and hi <= 1.0):
            raise ImageError(f"{name}: a float image array must hold values in [0, 1] (1.0 = white = 255); this one "
                             f"spans {lo:g}..{hi:g}: divide 0..255 values by 255, or pass uint8", "not_image")
        a = np.rint(a.astype(np.float64) * 255.0).astype(np.uint8)
    elif a.dtype != np.uint8:
        raise ImageError(f"{name}: image arrays are uint8 (0..255) or float in [0, 1]; got dtype {a.dtype}: "
                         "convert it, e.g. np.clip(a, 0, 255).astype(np.uint8)", "not_image")
    return Image.fromarray(np.ascontiguousarray(a))


@dataclass(frozen=True)
class ImageInput:
    """One image to predict on: a file or bytes (decoded when needed) or an image in memory; source names it."""

    source: str  # the path as given (or found in a folder), or "<array 0>", "<PIL.Image 1>", "<bytes 2>"
    path: Path | None = None
    data: bytes | None = None
    image: Image.Image | None = field(default=None, compare=False)  # oriented, in its own mode (L, RGB, RGBA...)

    def decode(self, draft_size: int | None = None, max_pixels: int = MAX_PIXELS,
               dicom_window: str = DEFAULT_DICOM_WINDOW) -> Image.Image:
        """8-bit RGB, decoded as decode_image decodes a file; ImageError otherwise."""
        if self.image is None:
            return decode_image(self.path if self.path is not None else self.data, draft_size, max_pixels,
                                dicom_window)
        return finish_image(self.image, draft_size, max_pixels)


def finish_image(img: Image.Image, draft_size: int | None = None, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """An image in memory -> RGB with decode_image's limits and shrinking, as if it had been read from a file."""
    check_size(img.width, img.height, max_pixels)
    if draft_size and img.width * img.height > SHRINK_ABOVE_PIXELS:
        img = _shrink(img, draft_size)
    try:
        return to_rgb(img)
    except (OSError, ValueError) as exc:  # a lazily opened PIL image whose file is corrupt
        raise ImageError(f"corrupt or truncated image: {exc}", "corrupt") from None


def list_folder(folder: Path) -> list[Path]:
    """The image files under a folder (recursively, sorted), by extension or DICOM content."""
    return sorted(p for p in folder.rglob("*") if p.is_file() and (p.suffix.lower() in IMAGE_EXTENSIONS
                                                                   or looks_like_dicom(p)))


def _expand_path(path: Path) -> list[Path]:
    """A folder -> its images; anything else is one path (decoding says when it is not a readable image)."""
    if path.is_dir():
        files = list_folder(path)
        if not files:
            raise ImageError(f"{path} contains no image files ({', '.join(sorted(IMAGE_EXTENSIONS))})", "not_image")
        return files
    return [path]


IMAGE_KINDS = "a path (str or Path), a folder, bytes, a PIL.Image, a numpy array (H x W or H x W x C), or a list of them"


def image_inputs(images, expand: Callable[[Path], list[Path]] = _expand_path) -> list[ImageInput]:
    """Whatever images a user holds -> one ImageInput per image, in order; a folder becomes its images (expand).

    A str or Path is one path (never a sequence of characters); bytes are one encoded file; a PIL image is taken
    as opening its file gives it (EXIF orientation applied, mode kept); an array as array_to_image reads it.
    """
    if isinstance(images, (str, Path, bytes, bytearray, memoryview, Image.Image, np.ndarray)):
        images = [images]
    elif not isinstance(images, Iterable) or _is_tensor(images):
        raise TypeError(f"images: expected {IMAGE_KINDS}; got {_kind(images)}")
    out: list[ImageInput] = []
    for i, item in enumerate(images):
        if isinstance(item, (str, Path)):
            out.extend(ImageInput(str(p), path=Path(p)) for p in expand(Path(item)))
        elif isinstance(item, (bytes, bytearray, memoryview)):
            out.append(ImageInput(f"<bytes {i}>", data=bytes(item)))
        elif isinstance(item, Image.Image):
            name = f"<PIL.Image {i}>"
            if 0 in item.size:
                raise ImageError(f"{name}: an empty image ({item.width}x{item.height} pixels)", "not_image")
            out.append(ImageInput(name, image=_orient(item, item.getexif().get(0x0112))))
        elif isinstance(item, np.ndarray):
            name = f"<array {i}>"
            out.append(ImageInput(name, image=array_to_image(item, name)))
        elif isinstance(item, ImageInput):
            out.append(item)
        else:
            raise TypeError(f"images[{i}]: expected {IMAGE_KINDS}; got {_kind(item)}")
    return out


def _is_tensor(obj) -> bool:
    return type(obj).__module__.split(".")[0] == "torch"


def _kind(obj) -> str:
    """The type's name, and for a torch tensor how to pass it instead."""
    if _is_tensor(obj):
        return (f"a torch {type(obj).__name__}: pass an image as a numpy array, e.g. "
                "tensor.permute(1, 2, 0).numpy() for a C x H x W tensor")
    return type(obj).__name__


def _deprecated(old: str, new: str) -> None:
    warnings.warn(f"Prediction.{old} is deprecated; use Prediction.{new}", DeprecationWarning, stacklevel=3)


@dataclass
class Prediction:
    """The model's answer for one image: the predicted class and its probability, the k most probable classes
    and every class's probability. A multi-label model: labels are those at or above their thresholds,
    predicted is them '|'-joined ("" for none), probability the highest, probabilities every label's."""

    source: str | None  # the path, "<array 0>", "<PIL.Image 1>"...; None when the caller named nothing
    predicted: str
    probability: float
    probabilities: dict[str, float]
    top: list[tuple[str, float]]  # the k most probable classes, most probable first
    labels: list[str] | None = None

    @property
    def path(self) -> str | None:
        """Deprecated name of source."""
        _deprecated("path", "source")
        return self.source

    @property
    def label(self) -> str:
        """Deprecated name of predicted (in tlearn's tables, label is the truth)."""
        _deprecated("label", "predicted")
        return self.predicted

    def to_dict(self, probabilities: bool = True) -> dict:
        """JSON-ready; 'path' and 'label' repeat source and predicted for readers of the earlier format."""
        out = {} if self.source is None else {"source": self.source, "path": self.source}
        out.update(predicted=self.predicted, label=self.predicted, probability=self.probability,
                   top=[{"label": c, "probability": p} for c, p in self.top])
        if probabilities or self.labels is not None:
            out["probabilities"] = self.probabilities
        if self.labels is not None:
            out["labels"] = self.labels
        return out


def predictions(probs: np.ndarray, classes: list[str], sources: list[str | None] | None = None, k: int = 5,
                thresholds: np.ndarray | None = None) -> list[Prediction]:
    """One Prediction per row of class probabilities; thresholds (one per class) make them multi-label."""
    out = []
    probs = np.atleast_2d(probs)
    for i, row in enumerate(probs):
        order = np.argsort(-row, kind="stable")[:max(1, k)]
        top = [(classes[j], float(row[j])) for j in order]
        every = {c: float(p) for c, p in zip(classes, row)}
        source = sources[i] if sources is not None else None
        if thresholds is not None:
            on = [c for c, p, t in zip(classes, row, thresholds) if p >= t]
            out.append(Prediction(source, "|".join(on), float(row.max()), every, top, on))
        else:
            out.append(Prediction(source, top[0][0], top[0][1], every, top))
    return out


def read_metadata(props: dict[str, str]) -> dict:
    """The tlearn.* entries of an ONNX model's metadata, JSON-decoded, without the prefix."""
    return {k[len(METADATA_PREFIX):]: json.loads(v) for k, v in props.items() if k.startswith(METADATA_PREFIX)}


class Classifier:
    """An exported tlearn model in onnxruntime: image bytes/files -> class probabilities."""

    def __init__(self, model_path: str | Path, threads: int | None = None,
                 max_pixels: int = MAX_PIXELS):
        import onnxruntime as ort

        self.path = Path(model_path)
        if not self.path.is_file():
            raise FileNotFoundError(f"model file {self.path} does not exist; make one with `tlearn export`.")
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        options.log_severity_level = 3
        self.session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        self.metadata = read_metadata(self.session.get_modelmeta().custom_metadata_map)
        if "classes" not in self.metadata:
            raise ValueError(f"{self.path} has no tlearn metadata; export it with `tlearn export`.")
        self.classes: list[str] = list(self.metadata["classes"])
        dc = self.metadata["data_config"]
        self.preprocess = Preprocess(int(dc["input_size"]), float(dc["crop_pct"]), str(dc["interpolation"]),
                                     str(dc.get("dicom_window", DEFAULT_DICOM_WINDOW)))
        self.input_name = self.session.get_inputs()[0].name
        self.max_pixels = max_pixels
        self.multilabel = self.metadata.get("task") == "multilabel"  # sigmoid outputs, one per label
        cuts = self.metadata.get("thresholds") or {}
        self.thresholds = np.array([float(cuts.get(c, 0.5)) for c in self.classes]) if self.multilabel else None

    @property
    def input_size(self) -> int:
        return self.preprocess.input_size

    def prepare(self, image) -> np.ndarray:
        """One image (a file, bytes, PIL image, numpy array or ImageInput) -> uint8 (S, S, 3) for the graph."""
        if not isinstance(image, ImageInput):
            found = image_inputs(image)
            if len(found) != 1:
                raise ValueError(f"prepare takes one image; {image!r} holds {len(found)}: use predict")
            image = found[0]
        rgb = image.decode(draft_size=self.preprocess.resize_size, max_pixels=self.max_pixels,
                           dicom_window=self.preprocess.dicom_window)
        try:
            return self.preprocess.to_array(rgb)
        except (MemoryError, OverflowError, ValueError) as exc:
            raise ImageError(f"cannot be resized ({type(exc).__name__}: {exc})", "too_large") from None

    def probabilities(self, batch: np.ndarray) -> np.ndarray:
        """uint8 (N, S, S, 3) -> float32 (N, classes)."""
        if batch.dtype != np.uint8 or batch.ndim != 4 or batch.shape[1:] != (self.input_size, self.input_size, 3):
            raise ValueError(f"expected uint8 (N, {self.input_size}, {self.input_size}, 3), got "
                             f"{batch.dtype} {batch.shape}")
        return self.session.run(None, {self.input_name: np.ascontiguousarray(batch)})[0]

    def top_k(self, probs: np.ndarray, k: int = 5, sources: list[str | None] | None = None) -> list[Prediction]:
        """One Prediction per row of probabilities (sources name the images, when known)."""
        return predictions(probs, self.classes, sources, k, self.thresholds)

    def predict(self, images, k: int = 5) -> list[Prediction]:
        """Top-k predictions for images as people hold them (see image_inputs: a path, a folder, bytes, a PIL
        image, a numpy array, or a list mixing them), in order; ImageError on the first unusable one."""
        items = image_inputs(images)
        if not items:
            return []
        batch = np.stack([self.prepare(item) for item in items])
        return self.top_k(self.probabilities(batch), k, [item.source for item in items])

    def predict_files(self, paths: list[str | Path], k: int = 5) -> list[Prediction]:
        """predict, kept for earlier callers."""
        return self.predict(list(paths), k)


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _spreadsheet_row(cells: list) -> list:
    """tlearn.files.spreadsheet_row, repeated here because this file imports nothing from tlearn: a string cell a
    spreadsheet would run as a formula gets a leading single quote; plain numbers such as -0.5 stay as they are."""
    import re

    number = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")

    def formula(text: str) -> bool:
        return text.startswith(_FORMULA_START) and not number.fullmatch(text)

    return ["'" + c if isinstance(c, str) and (formula(c) or (c.startswith("'") and formula(c.lstrip("'")))) else c
            for c in cells]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) < 2 or argv[0] in ("-h", "--help"):
        print("usage: python -m tlearn.runtime MODEL.onnx IMAGE [IMAGE ...]  (prints CSV: path,predicted,probability)",
              file=sys.stderr)
        return 2
    import csv

    clf = Classifier(argv[0])
    writer = csv.writer(sys.stdout, lineterminator="\n")  # quotes a path holding a comma, quote or newline
    # multi-label: predicted holds the labels at or above their thresholds ('|'-joined), then p:<label> columns
    writer.writerow(_spreadsheet_row(["path", "predicted", "probability"]
                                    + ([f"p:{c}" for c in clf.classes] if clf.multilabel else [])))
    status = 0
    for path in argv[1:]:
        try:
            for pred in clf.predict([path], k=1):  # a folder: each of its images
                writer.writerow(_spreadsheet_row([str(pred.source), pred.predicted, f"{pred.probability:.4f}"]
                                                + [f"{pred.probabilities[c]:.4f}" for c in clf.classes
                                                   if clf.multilabel]))
        except ImageError as exc:
            print(f"skipped {path}: {exc}", file=sys.stderr)
            status = 1
    return status


if __name__ == "__main__":
    raise SystemExit(main())
