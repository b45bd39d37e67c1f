"""Leakage across splits: the same image (byte-identical, or one file listed twice) or a near-copy of it
(resized, re-encoded) in train and in val/test, which inflates val/test figures without a word.

Exact copies are found by the files' sha256 (hashing.file_digest, shared with the decoded-image and feature
caches). Near copies by a 64-bit DCT perceptual hash (pHash) of a 32x32 grey thumbnail, decoded with the same
decoder as training at JPEG draft scale, and remembered in the cache by file content: two images whose hashes
differ in at most NEAR_THRESHOLD bits are reported as near-copies.
"""
from __future__ import annotations

import logging
import os
import sqlite3
import time
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.fft import dctn

from ..hashing import file_digest
from .images import UnreadableImage, load_rgb
from .layout import SPLITS, DataSplits

log = logging.getLogger("tlearn")

# Hamming distance (of 64 bits) at or below which two images count as near-copies. Chosen on the shared sets:
# a copy resized to half and re-encoded as JPEG q=70 lands at <= 6 on all of them, while distinct photos in one
# class are almost never within 8 (see the leakage section of the docs for the measurement).
NEAR_THRESHOLD = 8
PHASH_VERSION = 1
LISTED = 200  # pairs of each kind written out; the counts cover all of them


@dataclass
class LeakageReport:
    """exact: groups of byte-identical files (or one file) found in more than one split;
    near: (held-out image, its closest image in an earlier split) pairs within the threshold."""

    exact: list[dict] = field(default_factory=list)
    near: list[dict] = field(default_factory=list)
    exact_count: int = 0
    near_count: int = 0
    label_conflicts: list[dict] = field(default_factory=list)  # byte-identical files with different labels
    threshold: int = NEAR_THRESHOLD
    checked: dict[str, int] = field(default_factory=dict)
    unhashed: int = 0  # files that could not be read or decoded (listed as skipped by training)
    seconds: float = 0.0

    def __bool__(self) -> bool:
        return bool(self.exact_count or self.near_count)

    def to_dict(self) -> dict:
        return {"exact": self.exact, "near": self.near, "exact_count": self.exact_count,
                "near_count": self.near_count, "near_threshold": self.threshold,
                "near_method": f"64-bit DCT perceptual hash, Hamming distance <= {self.threshold}",
                "label_conflicts": self.label_conflicts, "checked": self.checked, "unhashed": self.unhashed,
                "seconds": round(self.seconds, 3)}

    def warning_text(self) -> str:
        """The block logged before training when anything leaks."""
        lines = ["LEAKAGE ACROSS SPLITS: val/test figures will be optimistic.",
                 f"  {self.exact_count} image(s) byte-identical in two splits (or one file in two splits); "
                 f"{self.near_count} held-out image(s) with a near-copy in another split "
                 f"(perceptual hash within {self.threshold} of 64 bits)."]
        for group in self.exact[:10]:
            lines.append("  exact: " + "  |  ".join(f"{s}: {p}" for s, p in zip(group["splits"], group["paths"])))
        for pair in self.near[:10]:
            lines.append(f"  near (distance {pair['distance']}): " + "  |  ".join(
                f"{s}: {p}" for s, p in zip(pair["splits"], pair["paths"])))
        shown = min(len(self.exact), 10) + min(len(self.near), 10)
        if self.exact_count + self.near_count > shown:
            lines.append(f"  ... the full list is in metrics.json under 'leakage' ({LISTED} of each kind at most).")
        lines.append("  Remove the copies from val/test (or from train) so they measure unseen images.")
        return "\n".join(lines)


def phash(image: Image.Image) -> int:
    """64-bit DCT perceptual hash: the signs, against their median, of the 8x8 lowest frequencies of a
    32x32 grey thumbnail. 0 for a flat image (no structure to compare)."""
    grey = np.asarray(image.convert("L").resize((32, 32), Image.Resampling.BOX), dtype=np.float32)
    low = dctn(grey, type=2, norm="ortho")[:8, :8]
    if float(np.abs(low.ravel()[1:]).max()) < 1.0:
        return 0
    bits = (low > np.median(low)).ravel()
    return int(np.packbits(bits).view(">u8")[0])


def _hash_file(path: Path) -> int | None:
    try:
        return phash(load_rgb(path, draft_size=64))
    except (UnreadableImage, OSError, ValueError, MemoryError):
        return None


class _HashCache:
    """file sha256 -> pHash, in one SQLite file beside the other caches (a few bytes per image)."""

    def __init__(self, cache_dir: str | Path | None):
        self._db = None
        if cache_dir is None:
            return
        try:
            path = Path(cache_dir) / "leakage" / f"phash-v{PHASH_VERSION}.sqlite"
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, timeout=60)
            self._db.execute("CREATE TABLE IF NOT EXISTS phash (file_sha256 TEXT PRIMARY KEY, hash TEXT)")
        except (OSError, sqlite3.Error) as exc:  # a read-only cache only costs time
            log.debug("leakage hash cache unavailable: %s", exc)
            self._db = None

    def get(self, digests: Sequence[str]) -> dict[str, int]:
        if self._db is None:
            return {}
        found: dict[str, int] = {}
        unique = list(dict.fromkeys(digests))
        for start in range(0, len(unique), 500):
            chunk = unique[start:start + 500]
            query = f"SELECT file_sha256, hash FROM phash WHERE file_sha256 IN ({','.join('?' * len(chunk))})"
            found.update((d, int(h, 16)) for d, h in self._db.execute(query, chunk))
        return found

    def put(self, items: dict[str, int]) -> None:
        if self._db is None or not items:
            return
        try:
            self._db.executemany("INSERT OR REPLACE INTO phash VALUES (?, ?)",
                                 [(d, f"{h:016x}") for d, h in items.items()])
            self._db.commit()
        except sqlite3.Error as exc:
            log.debug("leakage hash cache not written: %s", exc)

    def close(self) -> None:
        if self._db is not None:
            self._db.close()


def _digest(path: Path) -> str | None:
    try:
        return file_digest(path)
    except OSError:
        return None


def perceptual_hashes(paths: Sequence[Path], digests: Sequence[str | None], cache_dir: str | Path | None,
                      workers: int | None = None) -> list[int | None]:
    """pHash of each file (None when unreadable), from the cache by content or decoded now."""
    cache = _HashCache(cache_dir)
    try:
        known = cache.get([d for d in digests if d])
        todo = list({d: p for p, d in zip(paths, digests) if d and d not in known}.items())
        if todo:
            with ThreadPoolExecutor(workers or min(8, os.cpu_count() or 1)) as pool:  # Pillow decodes without the GIL
                new = dict(zip([d for d, _ in todo], pool.map(_hash_file, [p for _, p in todo])))
            cache.put({d: h for d, h in new.items() if h is not None})
            known.update(new)
    finally:
        cache.close()
    return [known.get(d) if d else None for d in digests]


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Bit distances between every hash in a (n,) and every hash in b (m,), uint64 -> (n, m)."""
    return np.bitwise_count(a[:, None] ^ b[None, :])


def _nearest(queries: np.ndarray, pool: np.ndarray, chunk: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """For each query hash: index of its closest pool hash and the distance (pool non-empty)."""
    index = np.empty(len(queries), dtype=np.int64)
    dist = np.empty(len(queries), dtype=np.int64)
    for start in range(0, len(queries), chunk):
        d = hamming(queries[start:start + chunk], pool)
        index[start:start + chunk] = d.argmin(1)
        dist[start:start + chunk] = d.min(1)
    return index, dist


def check_leakage(splits: DataSplits, cache_dir: str | Path | None = None, *, near: bool = True,
                  threshold: int = NEAR_THRESHOLD) -> LeakageReport:
    """Byte-identical files and near-copies shared between train, val and test (each image of a later split is
    compared with every image of the earlier ones)."""
    start = time.perf_counter()
    entries = [(split, s) for split in SPLITS for s in splits.split(split)]
    report = LeakageReport(threshold=threshold, checked=splits.counts())
    if not entries or sum(1 for n in splits.counts().values() if n) < 2:
        report.seconds = time.perf_counter() - start
        return report
    names = [split for split, _ in entries]
    paths = [s.path for _, s in entries]
    labels = [splits.classes[s.label] if 0 <= s.label < len(splits.classes) else None for _, s in entries]
    digests = [_digest(p) for p in paths]

    groups: dict[str, list[int]] = defaultdict(list)
    for i, d in enumerate(digests):
        groups[d or f"unreadable:{paths[i]}"].append(i)  # one unreadable file listed twice is still one file
    exact_pairs: set[tuple[int, int]] = set()
    for members in groups.values():
        if len({labels[i] for i in members}) > 1:
            report.label_conflicts.append({"paths": [str(paths[i]) for i in members],
                                           "splits": [names[i] for i in members],
                                           "labels": [labels[i] for i in members]})
        if len({names[i] for i in members}) > 1:
            report.exact.append({"paths": [str(paths[i]) for i in members], "splits": [names[i] for i in members],
                                 "labels": [labels[i] for i in members],
                                 "same_file": len({str(paths[i]) for i in members}) == 1})
            exact_pairs.update((i, j) for i in members for j in members if i != j)

    if near:
        hashes = perceptual_hashes(paths, digests, cache_dir)
        report.unhashed = sum(h is None for h in hashes)
        found = []
        for later_k, later in enumerate(SPLITS[1:], start=1):
            earlier = set(SPLITS[:later_k])
            q = [i for i, n in enumerate(names) if n == later and hashes[i] not in (None, 0)]
            p = [i for i, n in enumerate(names) if n in earlier and hashes[i] not in (None, 0)]
            if not q or not p:
                continue
            index, dist = _nearest(np.array([hashes[i] for i in q], dtype=np.uint64),
                                   np.array([hashes[i] for i in p], dtype=np.uint64))
            for qi, pj, d in zip(q, index, dist):
                j = p[int(pj)]
                if d <= threshold and (qi, j) not in exact_pairs and digests[qi] != digests[j]:
                    found.append((int(d), j, qi))
        found.sort()
        report.near_count = len(found)
        report.near = [{"paths": [str(paths[j]), str(paths[i])], "splits": [names[j], names[i]],
                        "labels": [labels[j], labels[i]], "distance": d} for d, j, i in found[:LISTED]]
    report.exact_count = len(report.exact)
    report.exact, report.label_conflicts = report.exact[:LISTED], report.label_conflicts[:LISTED]
    report.seconds = time.perf_counter() - start
    return report


def log_leakage(report: LeakageReport) -> None:
    """One loud warning block when anything leaks, one info line otherwise."""
    for group in report.label_conflicts[:10]:
        log.warning("the same image (byte-identical) carries different labels: %s", "  |  ".join(
            f"{s}/{label}: {p}" for s, label, p in zip(group["splits"], group["labels"], group["paths"])))
    if report:
        log.warning("%s", report.warning_text())
    else:
        log.info("leakage check: no image shared between splits (exact or within %d bits), %.1fs",
                 report.threshold, report.seconds)
