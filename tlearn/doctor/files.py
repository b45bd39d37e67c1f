"""What the files are: format, mode and size read from each image's header, and sizes or shapes far from the rest."""
from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..runtime import IMAGE_FORMATS

# A size or aspect ratio is an outlier when its log is more than OUTLIER_Z robust standard deviations (1.4826 MAD)
# from the median and differs from the median by at least OUTLIER_FACTOR (so a set of near-equal sizes has none).
OUTLIER_Z = 3.5
OUTLIER_FACTOR = 2.0


@dataclass(frozen=True)
class FileFacts:
    path: str
    split: str
    format: str | None  # None when the header cannot be read
    mode: str | None
    width: int = 0
    height: int = 0
    bytes: int = 0


def read_facts(path: str, split: str) -> FileFacts:
    """Format, mode and size from the header alone (no pixels decoded)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(path, formats=IMAGE_FORMATS) as img:
                fmt, mode, (w, h) = img.format, img.mode, img.size
        return FileFacts(path, split, fmt, mode, int(w), int(h), Path(path).stat().st_size)
    except Exception:  # noqa: BLE001 - the decode step lists the reason; here it only has no header facts
        return FileFacts(path, split, None, None)


def _robust_outliers(values: np.ndarray) -> np.ndarray:
    """Boolean mask of values whose log lies far from the median (see OUTLIER_Z, OUTLIER_FACTOR)."""
    if len(values) < 5:
        return np.zeros(len(values), dtype=bool)
    logs = np.log(values)
    median = np.median(logs)
    spread = 1.4826 * np.median(np.abs(logs - median))
    far = np.abs(logs - median) >= np.log(OUTLIER_FACTOR)
    if spread > 0:
        far &= np.abs(logs - median) > OUTLIER_Z * spread
    return far


def summarize_files(facts: Sequence[FileFacts]) -> dict:
    """Per split: formats, modes and the range of sizes; over all files: size and aspect-ratio outliers."""
    readable = [f for f in facts if f.format and f.width and f.height]
    per_split: dict[str, dict] = {}
    for split in dict.fromkeys(f.split for f in facts):
        mine = [f for f in readable if f.split == split]
        sides = sorted(min(f.width, f.height) for f in mine)
        per_split[split] = {
            "files": sum(1 for f in facts if f.split == split),
            "formats": dict(Counter(f.format for f in mine).most_common()),
            "modes": dict(Counter(f.mode for f in mine).most_common()),
            "short_side": {"min": sides[0], "median": sides[len(sides) // 2], "max": sides[-1]} if sides else {},
            "sizes": dict(Counter(f"{f.width}x{f.height}" for f in mine).most_common(3)),
        }
    outliers: list[dict] = []
    if readable:
        short = np.array([min(f.width, f.height) for f in readable], dtype=np.float64)
        aspect = np.array([max(f.width, f.height) / min(f.width, f.height) for f in readable], dtype=np.float64)
        median_short, median_aspect = float(np.median(short)), float(np.median(aspect))
        for k in np.flatnonzero(_robust_outliers(short)):
            f = readable[k]
            outliers.append({"path": f.path, "split": f.split, "kind": "size", "width": f.width, "height": f.height,
                             "why": f"short side {int(short[k])} px; the median is {median_short:.0f} px"})
        for k in np.flatnonzero(_robust_outliers(aspect)):
            f = readable[k]
            outliers.append({"path": f.path, "split": f.split, "kind": "aspect", "width": f.width, "height": f.height,
                             "why": f"aspect ratio {aspect[k]:.2f}; the median is {median_aspect:.2f}"})
    return {"per_split": per_split, "outliers": outliers}
