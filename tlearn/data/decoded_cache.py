"""Decode and resize each image once into a uint8 memory-mapped array in the user cache dir.

Training reads random crops from this array, so epochs after the first pay no JPEG decoding and memory
does not grow with the dataset (the OS pages the file in). Each image is stored as the centre S x S square
of the image resized so its shorter side is S = DataConfig.resize_size: a centre crop of input_size from it
is exactly the backbone's eval transform (S is trimmed so that S - input_size is a multiple of 4, which makes
the two centre crops round like the single one), and random crops for augmentation come from the same pixels.
The array is keyed by the files' contents (sha256), S and the interpolation, so renamed or copied files hit
and edited files miss.
"""
from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from ..hashing import file_digest, stable_hash
from ..runtime import DEFAULT_DICOM_WINDOW
from ..runtime import square_size as runtime_square_size
from .images import UnreadableImage, load_transformed
from .samples import Sample, SkippedFile
from .transforms import DataConfig, ResizeCrop

DECODED_FORMAT_VERSION = 3  # 2: images over SHRINK_ABOVE_PIXELS box-reduced first; 3: the square resampled under its box


@dataclass
class DecodedImages:
    """images[k] (S, S, 3 uint8) is samples[k], which is the rows[k]-th of the samples asked for."""

    images: np.ndarray  # read-only memmap (n, S, S, 3) uint8
    samples: list[Sample]
    rows: list[int]
    skipped: list[SkippedFile] = field(default_factory=list)
    path: Path | None = None
    from_cache: bool = False

    _file: tuple[int, object] | None = field(default=None, repr=False, compare=False)  # (pid, open file)

    @property
    def labels(self) -> np.ndarray:
        return np.array([s.label for s in self.samples], dtype=np.int64)

    def __len__(self) -> int:
        return len(self.samples)

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_file": None}  # a worker started by spawn opens its own

    def square(self, k: int) -> torch.Tensor:
        """images[k] as a (3, S, S) uint8 tensor. Read from the file rather than through the mapping: pages
        read through a mapping stay in the process's resident memory, which then grows with the dataset."""
        if self.path is None or getattr(self.images, "offset", None) is None:  # in memory (e.g. unpickled)
            return as_chw_tensor(self.images[k])
        if self._file is None or self._file[0] != os.getpid():  # a worker process opens its own
            self._file = (os.getpid(), open(self.path, "rb", buffering=0))  # noqa: SIM115 (lives with self)
        size = self.images.shape[1]
        row = bytearray(size * size * 3)
        got = os.preadv(self._file[1].fileno(), [row], self.images.offset + k * len(row))
        if got != len(row):
            raise OSError(f"{self.path}: short read of image {k} ({got} of {len(row)} bytes); the decoded-image "
                          "cache file is damaged: delete it and run again.")
        return torch.frombuffer(row, dtype=torch.uint8).view(size, size, 3).permute(2, 0, 1)


def square_size(cfg: DataConfig) -> int:
    """Side of the stored square: the one the eval geometry crops from (tlearn.runtime.square_size)."""
    return runtime_square_size(cfg.resize_size, cfg.input_size)


class _SquareFiles(Dataset):
    def __init__(self, paths: Sequence[Path], resize: int, size: int, interpolation: str, dicom_window: str):
        self.paths = list(paths)
        self.resize = resize
        self.geometry = ResizeCrop(resize, size, interpolation)
        self.window = dicom_window

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        try:
            return i, np.asarray(load_transformed(self.paths[i], self.geometry, draft_size=self.resize,
                                                  dicom_window=self.window)), None
        except UnreadableImage as exc:
            return i, None, str(exc)


def _entry(samples: Sequence[Sample], data_config: DataConfig) -> tuple[str, int, dict[int, SkippedFile]]:
    """(cache key of the sample list, square size, files that cannot be read by index)."""
    size = square_size(data_config)
    skipped: dict[int, SkippedFile] = {}
    digests: list[str] = []
    for i, s in enumerate(samples):
        try:
            digests.append(file_digest(s.path))
        except OSError as exc:
            digests.append("")
            skipped[i] = SkippedFile(str(s.path), f"cannot read file: {exc.strerror or exc}")
    parts = {"files": digests, "size": size, "resize": data_config.resize_size,
             "interpolation": data_config.interpolation, "format": DECODED_FORMAT_VERSION}
    if data_config.dicom_window != DEFAULT_DICOM_WINDOW:  # the default stays out: existing caches stay valid
        parts["dicom_window"] = data_config.dicom_window
    return stable_hash(parts, length=24), size, skipped


def _cached(samples: list[Sample], folder: Path, key: str) -> DecodedImages | None:
    array_path, meta_path = folder / f"{key}.npy", folder / f"{key}.json"
    if not (meta_path.is_file() and array_path.is_file()):
        return None
    meta = json.loads(meta_path.read_text())
    rows = meta["rows"]
    return DecodedImages(np.load(array_path, mmap_mode="r"), [samples[r] for r in rows], rows,
                         [SkippedFile(str(samples[r].path), why) for r, why in meta["skipped"]], array_path,
                         from_cache=True)


def _publish(samples: list[Sample], folder: Path, key: str, tmp_array: str, rows: list[int],
             skipped: dict[int, SkippedFile], size: int) -> DecodedImages:
    """Move a complete array into place and write its metadata last (its presence marks a complete entry)."""
    array_path = folder / f"{key}.npy"
    os.replace(tmp_array, array_path)
    meta = {"rows": rows, "skipped": [[i, s.reason] for i, s in sorted(skipped.items())], "size": size}
    fd, tmp_meta = tempfile.mkstemp(dir=folder, prefix=f".{key}.", suffix=".json")
    with os.fdopen(fd, "w") as f:
        json.dump(meta, f)
    os.replace(tmp_meta, folder / f"{key}.json")
    return DecodedImages(np.load(array_path, mmap_mode="r"), [samples[r] for r in rows], rows,
                         [skipped[i] for i in sorted(skipped)], array_path, from_cache=False)


def decode_images(samples: Sequence[Sample], data_config: DataConfig, cache_dir: str | Path, *,
                  num_workers: int = 0, progress: bool = False, desc: str = "decode") -> DecodedImages:
    """The samples decoded to uint8 squares of square_size(data_config), from the cache or decoded now."""
    samples = list(samples)
    key, size, skipped = _entry(samples, data_config)
    folder = Path(cache_dir) / "decoded"
    hit = _cached(samples, folder, key)
    if hit is not None:
        return hit

    folder.mkdir(parents=True, exist_ok=True)
    todo = [i for i in range(len(samples)) if i not in skipped]
    fd, tmp_array = tempfile.mkstemp(dir=folder, prefix=f".{key}.", suffix=".npy")
    os.close(fd)
    try:
        out = np.lib.format.open_memmap(tmp_array, mode="w+", dtype=np.uint8, shape=(len(todo), size, size, 3))
        ok = np.zeros(len(todo), dtype=bool)
        loader = DataLoader(_SquareFiles([samples[i].path for i in todo], data_config.resize_size, size,
                                     data_config.interpolation, data_config.dicom_window),
                            batch_size=16, num_workers=num_workers, collate_fn=list,
                            prefetch_factor=4 if num_workers else None)
        with tqdm(total=len(todo), desc=desc, unit="img", disable=not progress, leave=False) as bar:
            for batch in loader:
                for j, arr, err in batch:
                    if err is None:
                        out[j] = arr
                        ok[j] = True
                    else:
                        skipped[todo[j]] = SkippedFile(str(samples[todo[j]].path), err)
                bar.update(len(batch))
        kept = np.flatnonzero(ok)
        if len(kept) < len(todo):  # compact: drop the rows of unreadable files
            compact = np.lib.format.open_memmap(tmp_array + ".c.npy", mode="w+", dtype=np.uint8,
                                                shape=(len(kept), size, size, 3))
            compact[:] = out[kept]
            compact.flush()
            del out, compact
            os.replace(tmp_array + ".c.npy", tmp_array)
        else:
            out.flush()
            del out
        return _publish(samples, folder, key, tmp_array, [todo[j] for j in kept], skipped, size)
    finally:
        for leftover in (tmp_array, tmp_array + ".c.npy"):
            if os.path.exists(leftover):
                os.unlink(leftover)


def decode_joined(parts: Sequence[Sequence[Sample]], data_config: DataConfig, cache_dir: str | Path, *,
                  num_workers: int = 0, progress: bool = False, desc: str = "decode") -> DecodedImages:
    """What decode_images(all parts in order) returns, and caches under the same key, but assembled from each
    part's own cache entry: a part that several lists share (an unlabeled pool beside training images that change
    with the split) is decoded once, and later lists only copy its pixels."""
    parts = [list(part) for part in parts]
    samples = [s for part in parts for s in part]
    key, size, skipped = _entry(samples, data_config)
    folder = Path(cache_dir) / "decoded"
    hit = _cached(samples, folder, key)
    if hit is not None:
        return hit
    decoded = [decode_images(part, data_config, cache_dir, num_workers=num_workers, progress=progress, desc=desc)
               for part in parts]
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp_array = tempfile.mkstemp(dir=folder, prefix=f".{key}.", suffix=".npy")
    os.close(fd)
    try:
        out = np.lib.format.open_memmap(tmp_array, mode="w+", dtype=np.uint8,
                                        shape=(sum(len(d) for d in decoded), size, size, 3))
        rows, at, offset = [], 0, 0
        for part, d in zip(parts, decoded):
            for start in range(0, len(d), 256):  # in slices: the pool need not fit in memory
                out[at + start : at + min(start + 256, len(d))] = d.images[start : start + 256]
            rows += [offset + r for r in d.rows]
            reasons, kept = {s.path: s for s in d.skipped}, set(d.rows)
            skipped.update({offset + i: reasons.get(str(sample.path), SkippedFile(str(sample.path), "not decoded"))
                            for i, sample in enumerate(part) if i not in kept})
            at, offset = at + len(d), offset + len(part)
        out.flush()
        del out
        return _publish(samples, folder, key, tmp_array, rows, skipped, size)
    finally:
        if os.path.exists(tmp_array):
            os.unlink(tmp_array)


def as_chw_tensor(square: np.ndarray) -> torch.Tensor:
    """(S, S, 3) uint8 array (a memmap row) -> (3, S, S) uint8 tensor, copied out of the mapping."""
    return torch.from_numpy(np.array(square, copy=True)).permute(2, 0, 1)
