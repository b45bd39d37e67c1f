"""Leakage across splits: the same image (byte-identical, or one file listed twice) or a near-copy of it
(resized, re-encoded) in train and in val/test, which inflates val/test figures without a word.

Exact copies are found by the files' sha256 (hashing.file_digest, shared with the decoded-image and feature
caches). Near copies from a 32x32 grey thumbnail of each image (decoded by the training decoder at JPEG draft
scale, remembered in the cache by file content): pairs whose 64-bit DCT perceptual hashes (pHash) differ in at
most NEAR_BITS bits are candidates, and is_near decides with the thumbnails' correlation. The hash alone cannot
tell distinct chest X-rays apart (they share their coarse layout); the correlation can.

The whole check's result is kept in the cache too, keyed by every listed file's split, path, label and identity
(size, mtime, ctime, inode) and by the rule's settings: an unchanged data folder is not hashed again.
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

from ..hashing import file_digest, file_identity, stable_hash
from ..result_cache import BadEntry, load_result, save_result
from .images import UnreadableImage, load_rgb
from .neighbours import EXACT_UP_TO, nearest
from .samples import SPLITS, DataSplits, Sample

log = logging.getLogger("tlearn")

# A pair of images is a near-copy when their 64-bit DCT perceptual hashes differ in at most NEAR_BITS bits and
# either their thumbnails correlate >= NEAR_CORRELATION (resized / re-encoded copies: >= 0.97 for 98-100% of
# half-size JPEG q70 copies on the shared sets of 224 px and more, while distinct chest X-rays, which all look
# alike, reach it for 0%), or the hashes are within CROP_BITS and the match stands out: its correlation beats the
# query's second-best match by CROP_GAP (recropped or retouched copies; the median gap is 0.006-0.025).
NEAR_BITS = 12
NEAR_CORRELATION = 0.97
CROP_BITS = 6
CROP_GAP = 0.15
THUMB = 32  # side of the grey thumbnail both measures use
THUMB_VERSION = 1
CANDIDATES = 8  # beyond EXACT_UP_TO pool items: each query's most correlated items its closest copy is chosen from
LISTED = 200  # pairs of each kind written out; the counts cover all of them
RESULT_VERSION = 2  # of the cached check result: bump when what the check finds changes


@dataclass
class LeakageReport:
    """exact: groups of byte-identical files (or one file) found in more than one split;
    near: (held-out image, its closest image in an earlier split) pairs that pass both near-copy measures."""

    exact: list[dict] = field(default_factory=list)
    near: list[dict] = field(default_factory=list)
    exact_count: int = 0
    near_count: int = 0
    label_conflicts: list[dict] = field(default_factory=list)  # byte-identical files with different labels
    bits: int = NEAR_BITS
    correlation: float = NEAR_CORRELATION
    checked: dict[str, int] = field(default_factory=dict)
    unhashed: int = 0  # files that could not be read or decoded (listed as skipped by training)
    # held-out split -> every image of it with a copy (exact or near) in train, unabridged: the figures without
    # copies (tlearn.evaluate.without_copies) leave them out
    copied_from_train: dict[str, list[str]] = field(default_factory=dict)
    seconds: float = 0.0

    def __bool__(self) -> bool:
        return bool(self.exact_count or self.near_count)

    def to_dict(self) -> dict:
        return {"exact": self.exact, "near": self.near, "exact_count": self.exact_count,
                "near_count": self.near_count, "near_method": self.method(),
                "label_conflicts": self.label_conflicts, "checked": self.checked, "unhashed": self.unhashed,
                "copied_from_train": self.copied_from_train, "seconds": round(self.seconds, 3)}

    def method(self) -> str:
        return (f"64-bit DCT perceptual hashes within {self.bits} bits and {THUMB}x{THUMB} grey thumbnails "
                f"correlating >= {self.correlation}, or hashes within {CROP_BITS} bits and a correlation "
                f"{CROP_GAP} above the second-best match")

    def warning_text(self) -> str:
        """The block logged before training when anything leaks."""
        lines = ["LEAKAGE ACROSS SPLITS: val/test figures will be optimistic.",
                 f"  {self.exact_count} image(s) byte-identical in two splits (or one file in two splits); "
                 f"{self.near_count} held-out image(s) with a near-copy in an earlier split ({self.method()})."]
        for group in self.exact[:10]:
            lines.append("  exact: " + "  |  ".join(f"{s}: {p}" for s, p in zip(group["splits"], group["paths"])))
        for pair in self.near[:10]:
            lines.append(f"  near (correlation {pair['correlation']:.3f}): " + "  |  ".join(
                f"{s}: {p}" for s, p in zip(pair["splits"], pair["paths"])))
        shown = min(len(self.exact), 10) + min(len(self.near), 10)
        if self.exact_count + self.near_count > shown:
            lines.append(f"  ... the full list is in metrics.json under 'leakage' ({LISTED} of each kind at most).")
        lines.append("  Remove the copies from val/test (or from train) so they measure unseen images.")
        return "\n".join(lines)


def thumbnail(image: Image.Image) -> np.ndarray:
    """THUMB x THUMB grey uint8 thumbnail (box filter: the mean of each cell)."""
    return np.asarray(image.convert("L").resize((THUMB, THUMB), Image.Resampling.BOX), dtype=np.uint8)


def phash(thumbs: np.ndarray) -> np.ndarray:
    """64-bit DCT perceptual hash of each (n, THUMB, THUMB) thumbnail: the signs, against their median, of the
    8x8 lowest frequencies. 0 for a flat image (no structure to compare)."""
    low = dctn(thumbs.astype(np.float32), type=2, norm="ortho", axes=(1, 2))[:, :8, :8].reshape(len(thumbs), 64)
    bits = low > np.median(low, axis=1, keepdims=True)
    hashes = np.packbits(bits, axis=1).view(">u8").ravel().astype(np.uint64)
    hashes[np.abs(low[:, 1:]).max(1) < 1.0] = 0
    return hashes


def standardized(thumbs: np.ndarray) -> np.ndarray:
    """Thumbnails as unit vectors of zero mean: their dot product is the correlation."""
    x = thumbs.reshape(len(thumbs), -1).astype(np.float32)
    x -= x.mean(1, keepdims=True)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-6)


def _thumb_file(path: Path) -> np.ndarray | None:
    try:
        return thumbnail(load_rgb(path, draft_size=2 * THUMB))
    except (UnreadableImage, OSError, ValueError, MemoryError):
        return None


class _ThumbCache:
    """file sha256 -> thumbnail, in one SQLite file beside the other caches (1 KB per image)."""

    def __init__(self, cache_dir: str | Path | None):
        self._db = None
        if cache_dir is None:
            return
        try:
            path = Path(cache_dir) / "leakage" / f"thumbs-{THUMB}-v{THUMB_VERSION}.sqlite"
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, timeout=60)
            self._db.execute("CREATE TABLE IF NOT EXISTS thumbs (file_sha256 TEXT PRIMARY KEY, data BLOB)")
        except (OSError, sqlite3.Error) as exc:  # a read-only cache only costs time
            log.debug("leakage thumbnail cache unavailable: %s", exc)
            self._db = None

    def get(self, digests: Sequence[str]) -> dict[str, np.ndarray]:
        if self._db is None:
            return {}
        found: dict[str, np.ndarray] = {}
        unique = list(dict.fromkeys(digests))
        for start in range(0, len(unique), 500):
            chunk = unique[start:start + 500]
            query = f"SELECT file_sha256, data FROM thumbs WHERE file_sha256 IN ({','.join('?' * len(chunk))})"
            found.update((d, np.frombuffer(blob, np.uint8).reshape(THUMB, THUMB))
                         for d, blob in self._db.execute(query, chunk))
        return found

    def put(self, items: dict[str, np.ndarray]) -> None:
        if self._db is None or not items:
            return
        try:
            self._db.executemany("INSERT OR REPLACE INTO thumbs VALUES (?, ?)",
                                 [(d, t.tobytes()) for d, t in items.items()])
            self._db.commit()
        except sqlite3.Error as exc:
            log.debug("leakage thumbnail cache not written: %s", exc)

    def close(self) -> None:
        if self._db is not None:
            self._db.close()


def digest_or_none(path: Path) -> str | None:
    try:
        return file_digest(path)
    except OSError:
        return None


def thumbnails(paths: Sequence[Path], digests: Sequence[str | None], cache_dir: str | Path | None,
               workers: int | None = None) -> list[np.ndarray | None]:
    """Each file's thumbnail (None when unreadable), from the cache by content or decoded now."""
    cache = _ThumbCache(cache_dir)
    try:
        known = cache.get([d for d in digests if d])
        todo = list({d: p for p, d in zip(paths, digests) if d and d not in known}.items())
        if todo:
            with ThreadPoolExecutor(workers or min(8, os.cpu_count() or 1)) as pool:  # Pillow decodes without the GIL
                new = dict(zip([d for d, _ in todo], pool.map(_thumb_file, [p for _, p in todo])))
            cache.put({d: t for d, t in new.items() if t is not None})
            known.update(new)
    finally:
        cache.close()
    return [known.get(d) if d else None for d in digests]


def signatures(paths: Sequence[Path], digests: Sequence[str | None], cache_dir: str | Path | None
               ) -> tuple[list[int], np.ndarray, np.ndarray]:
    """(indices of the readable files, each file's pHash, each file's standardized thumbnail); 0 / zeros for the
    unreadable ones."""
    thumbs = thumbnails(paths, digests, cache_dir)
    ok = [i for i, t in enumerate(thumbs) if t is not None]
    hashes = np.zeros(len(paths), dtype=np.uint64)
    vectors = np.zeros((len(paths), THUMB * THUMB), dtype=np.float32)
    if ok:
        stack = np.stack([thumbs[i] for i in ok])
        hashes[ok], vectors[ok] = phash(stack), standardized(stack)
    return ok, hashes, vectors


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Bit distances between every hash in a (n,) and every hash in b (m,), uint64 -> (n, m)."""
    return np.bitwise_count(a[:, None] ^ b[None, :])


def closest_copies(q_hash: np.ndarray, q_vec: np.ndarray, p_hash: np.ndarray, p_vec: np.ndarray, bits: int,
                   chunk: int = 256, exclude: np.ndarray | None = None, exact_up_to: int = EXACT_UP_TO
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """For each query: the pool item correlating best among those within `bits` of its hash (-1 when none), that
    correlation, the hash distance, and by how much it beats the query's second-best correlation in the pool.
    exclude: per query, a pool index never matched (the query itself when the pool is the queries).
    Pools of more than exact_up_to items: among each query's CANDIDATES most correlated items, found without
    comparing every pair (tlearn.data.neighbours); a near copy is among them (see is_near: the crop rule needs
    the best match to beat all others, the other rule a correlation of NEAR_CORRELATION)."""
    if len(p_hash) > exact_up_to:
        return _closest_among_candidates(q_hash, q_vec, p_hash, p_vec, bits, exclude, exact_up_to)
    index = np.full(len(q_hash), -1, dtype=np.int64)
    corr = np.full(len(q_hash), -1.0, dtype=np.float32)
    gap = np.zeros(len(q_hash), dtype=np.float32)
    dist = np.zeros(len(q_hash), dtype=np.int64)
    for start in range(0, len(q_hash), chunk):
        sl = slice(start, start + chunk)
        d = hamming(q_hash[sl], p_hash)
        c_all = q_vec[sl] @ p_vec.T
        rows = np.arange(c_all.shape[0])
        if exclude is not None:
            c_all[rows, exclude[sl]] = -1.0
        c = np.where(d <= bits, c_all, -1.0)
        best = c.argmax(1)
        index[sl] = np.where(c[rows, best] > -1.0, best, -1)
        corr[sl], dist[sl] = c[rows, best], d[rows, best]
        c_all[rows, best] = -1.0
        gap[sl] = corr[sl] - c_all.max(1) if p_vec.shape[0] > 1 + (exclude is not None) else 1.0
    return index, corr, dist, gap


def _closest_among_candidates(q_hash: np.ndarray, q_vec: np.ndarray, p_hash: np.ndarray, p_vec: np.ndarray,
                              bits: int, exclude: np.ndarray | None, exact_up_to: int
                              ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """closest_copies over each query's most correlated pool items rather than the whole pool."""
    index, sims = nearest(q_vec, p_vec, CANDIDATES, exclude, exact_up_to=exact_up_to)
    if index.shape[1] == 0:
        empty = np.full(len(q_hash), -1, dtype=np.int64)
        return (empty, np.full(len(q_hash), -1.0, np.float32), np.zeros(len(q_hash), np.int64),
                np.ones(len(q_hash), np.float32))
    missing = index < 0  # fewer candidates than asked (tlearn.data.neighbours)
    sims = np.where(missing, np.float32(-1.0), sims)
    d = np.where(missing, 65, np.bitwise_count(q_hash[:, None] ^ p_hash[index]).astype(np.int64))
    c = np.where(d <= bits, sims, np.float32(-1.0))
    rows = np.arange(len(q_hash))
    best = c.argmax(1)
    corr = c[rows, best]
    others = sims.copy()
    others[rows, best] = -np.inf
    gap = corr - others.max(1) if sims.shape[1] > 1 else np.ones(len(q_hash), np.float32)
    return (np.where(corr > -1.0, index[rows, best], -1), corr.astype(np.float32), d[rows, best],
            gap.astype(np.float32))


def is_near(corr: float, bits: int, gap: float, correlation: float = NEAR_CORRELATION) -> bool:
    """The near-copy rule (see NEAR_BITS): a close match, or a hash match that stands out from the rest."""
    return corr >= correlation or (bits <= CROP_BITS and gap >= CROP_GAP)


def result_key(entries: Sequence[tuple[str, Sample]], classes: Sequence[str], near: bool, bits: int,
               correlation: float) -> str:
    """The cache key of a check: each file's split, path, label and identity, and the rule's settings."""
    return stable_hash({"version": RESULT_VERSION, "near": near, "bits": bits, "correlation": correlation,
                        "rule": [CROP_BITS, CROP_GAP, THUMB, THUMB_VERSION, LISTED], "classes": list(classes),
                        "files": [[split, str(s.path), s.label, file_identity(s.path)] for split, s in entries]},
                       length=32)


def _cached_report(meta: dict, arrays: dict, checked: dict[str, int], bits: int, correlation: float
                   ) -> LeakageReport:
    """A LeakageReport from its cached fields, after checking their types (BadEntry otherwise)."""
    lists = {k: meta[k] for k in ("exact", "near", "label_conflicts")}
    counts = {k: meta[k] for k in ("exact_count", "near_count", "unhashed")}
    if any(not isinstance(v, list) or not all(isinstance(x, dict) for x in v) for v in lists.values()):
        raise BadEntry("exact/near/label_conflicts are not lists of records")
    if any(type(v) is not int or v < 0 for v in counts.values()):
        raise BadEntry("counts are not non-negative integers")
    if meta.get("checked") != checked:
        raise BadEntry(f"checked {meta.get('checked')} images, the splits hold {checked}")
    copied = meta.get("copied_from_train")
    if not isinstance(copied, dict) or any(split not in checked or not isinstance(paths, list)
                                           or not all(isinstance(p, str) for p in paths)
                                           for split, paths in copied.items()):
        raise BadEntry("copied_from_train is not a list of paths per split")
    return LeakageReport(bits=bits, correlation=correlation, checked=checked, copied_from_train=copied, **lists,
                         **counts)


def check_leakage(splits: DataSplits, cache_dir: str | Path | None = None, *, near: bool = True,
                  bits: int = NEAR_BITS, correlation: float = NEAR_CORRELATION) -> LeakageReport:
    """Byte-identical files and near-copies shared between train, val and test (each image of a later split is
    compared with every image of the earlier ones); from the cache when no listed file changed."""
    start = time.perf_counter()
    entries = [(split, s) for split in SPLITS for s in splits.split(split)]
    report = LeakageReport(bits=bits, correlation=correlation, checked=splits.counts())
    if not entries or sum(1 for n in splits.counts().values() if n) < 2:
        report.seconds = time.perf_counter() - start
        return report
    key = result_key(entries, splits.classes, near, bits, correlation) if cache_dir is not None else ""
    cached = load_result(cache_dir, "leakage", key,
                         lambda meta, arrays: _cached_report(meta, arrays, report.checked, bits, correlation))
    if cached is not None:
        cached.seconds = time.perf_counter() - start
        return cached
    _check(report, entries, splits.classes, cache_dir, near, bits, correlation)
    report.seconds = time.perf_counter() - start
    if cache_dir is not None:
        save_result(cache_dir, "leakage", key, {k: v for k, v in report.to_dict().items()
                                                 if k not in ("seconds", "near_method")})
    return report


def _check(report: LeakageReport, entries: Sequence[tuple[str, Sample]], classes: Sequence[str],
           cache_dir: str | Path | None, near: bool, bits: int, correlation: float) -> None:
    """check_leakage's work, filling report."""
    names = [split for split, _ in entries]
    paths = [s.path for _, s in entries]
    labels = [classes[s.label] if 0 <= s.label < len(classes) else None for _, s in entries]
    digests = [digest_or_none(p) for p in paths]

    groups: dict[str, list[int]] = defaultdict(list)
    for i, d in enumerate(digests):
        groups[d or f"unreadable:{paths[i]}"].append(i)  # one unreadable file listed twice is still one file
    exact_pairs: set[tuple[int, int]] = set()
    copied: set[tuple[str, str]] = set()  # (held-out split, path) with a copy in train
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
            if any(names[i] == "train" for i in members):  # figures without copies
                copied.update((names[i], str(paths[i])) for i in members if names[i] != "train")

    if near:
        ok, hashes, vectors = signatures(paths, digests, cache_dir)
        report.unhashed = len(paths) - len(ok)
        found = []
        for later_k, later in enumerate(SPLITS[1:], start=1):
            earlier = set(SPLITS[:later_k])
            q = [i for i in ok if names[i] == later and hashes[i]]
            p = np.array([i for i in ok if names[i] in earlier and hashes[i]], dtype=np.int64)
            if not q or not len(p):
                continue
            index, corr, dist, gap = closest_copies(hashes[q], vectors[q], hashes[p], vectors[p], bits)
            for qi, pj, c, d, g in zip(q, index, corr, dist, gap):
                if pj < 0 or not is_near(float(c), int(d), float(g), correlation):
                    continue
                j = int(p[pj])
                if (qi, j) not in exact_pairs and digests[qi] != digests[j]:
                    found.append((-float(c), int(d), j, qi))
        found.sort()
        report.near_count = len(found)
        report.near = [{"paths": [str(paths[j]), str(paths[i])], "splits": [names[j], names[i]],
                        "labels": [labels[j], labels[i]], "correlation": round(-c, 4), "hash_bits": d}
                       for c, d, j, i in found[:LISTED]]
        copied.update((names[i], str(paths[i])) for _, _, j, i in found if names[j] == "train")
    report.copied_from_train = {split: sorted(p for s, p in copied if s == split)
                                for split in SPLITS[1:] if any(s == split for s, _ in copied)}
    report.exact_count = len(report.exact)
    report.exact, report.label_conflicts = report.exact[:LISTED], report.label_conflicts[:LISTED]


def log_leakage(report: LeakageReport) -> None:
    """One loud warning block when anything leaks, one info line otherwise."""
    for group in report.label_conflicts[:10]:
        log.warning("the same image (byte-identical) carries different labels: %s", "  |  ".join(
            f"{s}/{label}: {p}" for s, label, p in zip(group["splits"], group["labels"], group["paths"])))
    if report:
        log.warning("%s", report.warning_text())
    else:
        log.info("leakage check: no image shared between splits (exact, or near: %s), %.1fs", report.method(),
                 report.seconds)
