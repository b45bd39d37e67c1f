"""Image preprocessing described by data, so a model carries its own eval transform."""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import torch
from PIL import Image
from torchvision.transforms import v2 as T

from ..runtime import DEFAULT_DICOM_WINDOW
from ..runtime import resize_crop as resize_crop_in_source


@dataclass(frozen=True)
class DataConfig:
    """How a backbone wants its input: size, normalisation and the eval resize/crop.

    train_size, when set, is the size fine-tuning crops at (random resized crops); prediction runs at
    input_size. Random crops show objects larger than a centre crop does, so a network trained on them does
    best when it predicts at a somewhat larger size (Touvron et al. 2019, "FixRes").
    """

    input_size: int = 224
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    crop_pct: float = 0.875
    interpolation: str = "bicubic"
    train_size: int | None = None  # None: train at input_size
    dicom_window: str = DEFAULT_DICOM_WINDOW  # how DICOM grey values become pixels (tlearn.runtime_dicom)

    def to_dict(self) -> dict:
        return asdict(self)

    def cache_dict(self) -> dict:
        """to_dict for cache keys: the default window is left out, so caches made before DICOM support stay valid."""
        d = self.to_dict()
        if d["dicom_window"] == DEFAULT_DICOM_WINDOW:
            del d["dicom_window"]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "DataConfig":
        """The record to_dict wrote; a missing key (a record from an earlier format) raises KeyError naming it."""
        return cls(
            input_size=int(d["input_size"]),
            mean=tuple(float(x) for x in d["mean"]),
            std=tuple(float(x) for x in d["std"]),
            crop_pct=float(d["crop_pct"]),
            interpolation=str(d["interpolation"]),
            train_size=int(d["train_size"]) if d["train_size"] is not None else None,
            dicom_window=str(d["dicom_window"]),
        )

    def with_size(self, size: int | None) -> "DataConfig":
        """Train and predict at `size` (a size the user chose replaces both)."""
        return self if size is None else replace(self, input_size=int(size), train_size=None)

    @property
    def training_size(self) -> int:
        return self.train_size or self.input_size

    @property
    def resize_size(self) -> int:
        return int(round(self.input_size / self.crop_pct))


def eval_transform(cfg: DataConfig) -> T.Compose:
    """PIL RGB image -> normalised float tensor (3, S, S): resize shorter side, centre crop."""
    return T.Compose([resize_crop(cfg), T.PILToTensor(), *normalize(cfg)])


def resize_crop(cfg: DataConfig) -> "ResizeCrop":
    """The eval geometry alone (PIL in, PIL out; Pillow's SIMD resize is the fastest on CPU)."""
    return ResizeCrop(cfg.resize_size, cfg.input_size, cfg.interpolation)


class ResizeCrop:
    """Shorter side to `resize`, centre crop `size` of a PIL image: torchvision's Resize + CenterCrop, resampled
    only under the crop by tlearn.runtime's resize_crop (exported models see the same pixels)."""

    def __init__(self, resize: int, size: int, interpolation: str):
        self.resize, self.size, self.interpolation = resize, size, interpolation

    def __call__(self, img: Image.Image) -> Image.Image:
        return resize_crop_in_source(img, self.resize, self.size, self.interpolation)


def normalize(cfg: DataConfig) -> list:
    """uint8 tensor -> normalised float tensor, as the backbone was trained."""
    return [T.ToDtype(torch.float32, scale=True), T.Normalize(cfg.mean, cfg.std)]


def to_uint8_chw(img: Image.Image) -> torch.Tensor:
    """PIL RGB image -> (3, H, W) uint8 tensor, a view of the image's own (H, W, 3) pixels (no float copy)."""
    import numpy as np

    return torch.from_numpy(np.array(img, dtype=np.uint8)).permute(2, 0, 1)


class BatchNormalize:
    """Stacked uint8 images -> the normalised float batch, channels_last (the layout inference runs in).

    What normalize(cfg) does to each image ((x / 255 - mean) / std, equal to within float rounding), folded
    into one multiply-add over the batch in numpy: single-threaded and without the GIL, so a decode thread
    runs it beside the model's forward without competing for torch's threads."""

    def __init__(self, cfg: DataConfig):
        import numpy as np

        std = np.asarray(cfg.std, dtype=np.float64)
        self.scale = (1.0 / (255.0 * std)).astype(np.float32)
        self.shift = (-np.asarray(cfg.mean, dtype=np.float64) / std).astype(np.float32)

    def __call__(self, images: list[torch.Tensor]) -> torch.Tensor:
        import numpy as np

        n, (_, h, w) = len(images), images[0].shape
        out = np.empty((n, h, w * 3), dtype=np.float32)  # (N, H, W, 3) as whole pixel rows: the inner loop runs W * 3
        scale, shift = np.tile(self.scale, w), np.tile(self.shift, w)
        for x, rows in zip(images, out):  # one image at a time into its slot: no stacked uint8 copy, cache-warm
            rows[...] = x.permute(1, 2, 0).numpy().reshape(h, w * 3)
            rows *= scale
            rows += shift
        return torch.from_numpy(out.reshape(n, h, w, 3)).permute(0, 3, 1, 2)  # (N, 3, H, W), channels_last
