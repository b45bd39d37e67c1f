"""Classify images with an exported tlearn ONNX model using onnxruntime, numpy and Pillow alone.

This module imports nothing else from tlearn (and never torch), so it also works as a single file copied
next to a model on a machine without PyTorch:

    from tlearn.runtime import Classifier            # or: from runtime import Classifier (copied file)
    clf = Classifier("model.onnx")
    for p in clf.predict_files(["bee.jpg"]):
        print(p.label, p.probability)

    python -m tlearn.runtime model.onnx IMAGE ...     # one line per image: path, label, probability

The exported graph takes a uint8 RGB batch (N, S, S, 3) and normalises itself; this module only decodes the
image and does the eval resize + centre crop, with the same geometry as tlearn.data.transforms.resize_crop
(and the same decoding rules as tlearn.data.images.load_rgb).
"""
from __future__ import annotations

import io
import json
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

METADATA_PREFIX = "tlearn."
DEFAULT_MAX_PIXELS = 20_000 * 20_000  # same refusal limit as tlearn.data.images.MAX_PIXELS
_RESAMPLE = {"bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC,
             "nearest": Image.Resampling.NEAREST}


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

    @property
    def resize_size(self) -> int:
        return int(round(self.input_size / self.crop_pct))

    def resize_crop(self, img: Image.Image) -> Image.Image:
        """Same output as torchvision Resize(resize_size) + CenterCrop(input_size) on a PIL image."""
        w, h = img.size
        short, long = (w, h) if w <= h else (h, w)
        new_short, new_long = self.resize_size, int(self.resize_size * long / short)
        new_w, new_h = (new_short, new_long) if w <= h else (new_long, new_short)
        if (new_w, new_h) != (w, h):
            img = img.resize((new_w, new_h), resample=_RESAMPLE[self.interpolation])
        s = self.input_size
        if new_w < s or new_h < s:  # cannot happen after the resize above, but crop like torchvision would
            canvas = Image.new("RGB", (max(s, new_w), max(s, new_h)))
            canvas.paste(img, ((max(s, new_w) - new_w) // 2, (max(s, new_h) - new_h) // 2))
            img, new_w, new_h = canvas, canvas.width, canvas.height
        top, left = int(round((new_h - s) / 2.0)), int(round((new_w - s) / 2.0))
        return img.crop((left, top, left + s, top + s))

    def to_array(self, img: Image.Image) -> np.ndarray:
        """Decoded RGB image -> uint8 (S, S, 3), what the exported graph takes."""
        return np.asarray(self.resize_crop(img), dtype=np.uint8)


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
        arr = np.asarray(img, dtype=np.float64)
        lo, hi = float(np.min(arr)), float(np.max(arr))
        scaled = np.zeros_like(arr) if hi <= lo else (arr - lo) * (255.0 / (hi - lo))
        grey = Image.fromarray(np.clip(np.rint(scaled), 0, 255).astype(np.uint8), mode="L")
        return grey.convert("RGB")
    return img.convert("RGB")


def decode_image(data: bytes | str | Path, draft_size: int | None = None,
                 max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Bytes or a file -> oriented 8-bit RGB image; ImageError (with a reason and kind) otherwise.

    The pixel count is checked from the header before anything is decoded (decompression bombs).
    """
    source = io.BytesIO(data) if isinstance(data, (bytes, bytearray, memoryview)) else data
    if isinstance(source, io.BytesIO) and not source.getbuffer().nbytes:
        raise ImageError("empty body (0 bytes)", "not_image")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(source) as img:
                if img.width * img.height > max_pixels:
                    raise ImageError(f"image too large ({img.width}x{img.height} pixels; the limit is "
                                     f"{max_pixels} pixels): refused as a possible decompression bomb",
                                     "too_large")
                if draft_size and img.format == "JPEG":
                    img.draft("RGB", (draft_size, draft_size))
                img.load()
                return to_rgb(ImageOps.exif_transpose(img))
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError("not an image (unknown or corrupt format)", "not_image") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(f"refused as a decompression bomb: {exc}", "too_large") from None
    except FileNotFoundError as exc:
        raise ImageError(f"cannot read file: {exc.strerror or exc}", "not_image") from None
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise ImageError(f"corrupt or truncated image: {exc}", "corrupt") from None


@dataclass
class Prediction:
    label: str
    probability: float
    top: list[tuple[str, float]]  # the k most probable classes, most probable first

    def to_dict(self) -> dict:
        return {"label": self.label, "probability": self.probability,
                "top": [{"label": c, "probability": p} for c, p in self.top]}


def read_metadata(props: dict[str, str]) -> dict:
    """The tlearn.* entries of an ONNX model's metadata, JSON-decoded, without the prefix."""
    return {k[len(METADATA_PREFIX):]: json.loads(v) for k, v in props.items() if k.startswith(METADATA_PREFIX)}


class Classifier:
    """An exported tlearn model in onnxruntime: image bytes/files -> class probabilities."""

    def __init__(self, model_path: str | Path, threads: int | None = None,
                 max_pixels: int = DEFAULT_MAX_PIXELS):
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
        self.preprocess = Preprocess(int(dc["input_size"]), float(dc["crop_pct"]), str(dc["interpolation"]))
        self.input_name = self.session.get_inputs()[0].name
        self.max_pixels = max_pixels

    @property
    def input_size(self) -> int:
        return self.preprocess.input_size

    def prepare(self, image: bytes | str | Path | Image.Image) -> np.ndarray:
        """One image (bytes, file or PIL RGB) -> uint8 (S, S, 3) ready for the graph."""
        if not isinstance(image, Image.Image):
            image = decode_image(image, draft_size=self.preprocess.resize_size, max_pixels=self.max_pixels)
        return self.preprocess.to_array(image.convert("RGB"))

    def probabilities(self, batch: np.ndarray) -> np.ndarray:
        """uint8 (N, S, S, 3) -> float32 (N, classes)."""
        if batch.dtype != np.uint8 or batch.ndim != 4 or batch.shape[1:] != (self.input_size, self.input_size, 3):
            raise ValueError(f"expected uint8 (N, {self.input_size}, {self.input_size}, 3), got "
                             f"{batch.dtype} {batch.shape}")
        return self.session.run(None, {self.input_name: np.ascontiguousarray(batch)})[0]

    def top_k(self, probs: np.ndarray, k: int = 5) -> list[Prediction]:
        out = []
        for row in np.atleast_2d(probs):
            order = np.argsort(-row, kind="stable")[:max(1, k)]
            top = [(self.classes[i], float(row[i])) for i in order]
            out.append(Prediction(top[0][0], top[0][1], top))
        return out

    def predict(self, images: list, k: int = 5) -> list[Prediction]:
        """Images (bytes, files or PIL) -> top-k predictions; ImageError on the first unusable one."""
        if not images:
            return []
        return self.top_k(self.probabilities(np.stack([self.prepare(im) for im in images])), k)

    def predict_files(self, paths: list[str | Path], k: int = 5) -> list[Prediction]:
        return self.predict(list(paths), k)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) < 2 or argv[0] in ("-h", "--help"):
        print("usage: python -m tlearn.runtime MODEL.onnx IMAGE [IMAGE ...]", file=sys.stderr)
        return 2
    clf = Classifier(argv[0])
    status = 0
    for path in argv[1:]:
        try:
            pred = clf.predict([path], k=1)[0]
            print(f"{path}\t{pred.label}\t{pred.probability:.4f}")
        except ImageError as exc:
            print(f"skipped {path}: {exc}", file=sys.stderr)
            status = 1
    return status


if __name__ == "__main__":
    raise SystemExit(main())
