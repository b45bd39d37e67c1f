"""The teacher's outputs on K stored random views per image, computed once and reused by every student and seed.

After Fast Knowledge Distillation (Shen and Xing, ECCV 2022): each training image (labelled or not) gets K random
views, a crop box in its decoded square and a mirror flag, drawn once from a fixed seed; the teacher judges each
view once (batched; bf16 where it agrees with fp32 on the first batches, else fp32) and its class probabilities
are stored (all of them up to FULL_PROBS_UP_TO classes, else the top TOP_K with the rest of the mass spread over
the other classes). The student then re-crops the same box from the same decoded square at its own size, mirrors
it alike, and learns the stored probabilities: no teacher runs while it trains.

The views live in the result cache (CACHE/teacher-views/KEY.npz, no pickle, validated on read) under a key made
of the teacher's weights and transform, the decoded images' content key, the view geometry and the precision
asked for; not of K: view v of image k is the same whatever K, so an entry with more views serves a run that
wants fewer, and a run that wants more computes only the views it lacks.
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision.transforms.v2 import functional as TF

from ..data.augment import CROP_RATIOS, CROP_SCALES, MIRRORING
from ..data.decoded_cache import DecodedImages
from ..data.transforms import DataConfig
from ..device import autocast, bf16_supported
from ..errors import TlearnError
from ..features.cache import module_fingerprint
from ..hashing import stable_hash
from ..result_cache import BadEntry, load_result, save_result
from ..train.data import epoch_seed

log = logging.getLogger("tlearn")

KIND = "teacher-views"
VIEWS_FORMAT = 1
VIEW_SEED = 0  # fixed: the views do not depend on the run's seed, so every seed shares them
FULL_PROBS_UP_TO = 20  # classes: store every probability; above, the top TOP_K
TOP_K = 10
CHECK_BATCHES = 2  # batches judged in both fp32 and bf16 before bf16 is trusted
MIN_BF16_AGREEMENT = 0.99  # top-1 agreement with fp32 on those batches
MAX_BF16_PROB_DIFF = 0.05  # mean absolute difference of the probabilities, summed over classes
STORED_PRESETS = ("none", "flip", "crop", "light")  # the geometric presets a stored view reproduces
MIX_CHECK_PAIRS = 64  # mixed pairs on which the mixed stored label is compared with the teacher's own output


@dataclass(frozen=True)
class ViewGeometry:
    """How views are drawn from a decoded square of `square` px: random resized crops of `scale` (None: the centre
    crop of `centre` px, the eval view), mirrored at random when `flip`."""

    square: int
    scale: tuple[float, float] | None
    flip: bool
    centre: int

    @classmethod
    def for_preset(cls, augment: str, view: DataConfig, square: int) -> "ViewGeometry":
        if augment not in STORED_PRESETS:
            raise TlearnError(f"--views stores crop boxes and mirrors only; --augment {augment} also changes colours "
                              f"and pixels, which stored views cannot reproduce. Use --augment "
                              f"{' / '.join(STORED_PRESETS)}, or --views 0 for a live teacher.")
        return cls(square=square, scale=CROP_SCALES.get(augment), flip=augment in MIRRORING,
                   centre=min(view.input_size, square))

    def to_dict(self) -> dict:
        return {"square": self.square, "scale": list(self.scale) if self.scale else None, "flip": self.flip,
                "centre": self.centre}


def draw_views(n: int, first: int, last: int, geometry: ViewGeometry) -> tuple[np.ndarray, np.ndarray]:
    """(boxes (n, last - first, 4) int32 as top, left, height, width; flips (n, last - first) bool) for views
    first..last-1 of n images. View v is drawn from its own seed, so it is the same whatever the number of views.
    Random resized crops as torchvision draws them (10 tries, then the largest box of an allowed ratio)."""
    s = geometry.square
    boxes = np.zeros((n, last - first, 4), dtype=np.int32)
    flips = np.zeros((n, last - first), dtype=bool)
    for j, v in enumerate(range(first, last)):
        rng = np.random.default_rng([VIEW_SEED, v])
        if geometry.flip:
            flips[:, j] = rng.random(n) < 0.5
        for k in range(n):
            boxes[k, j] = _random_box(rng, s, geometry.scale) if geometry.scale else _centre_box(s, geometry.centre)
    return boxes, flips


def _centre_box(square: int, size: int) -> tuple[int, int, int, int]:
    offset = int(round((square - size) / 2.0))
    return offset, offset, size, size


def _random_box(rng: np.random.Generator, square: int, scale: tuple[float, float]) -> tuple[int, int, int, int]:
    area = square * square
    log_ratio = (math.log(CROP_RATIOS[0]), math.log(CROP_RATIOS[1]))
    for _ in range(10):
        target = area * rng.uniform(*scale)
        ratio = math.exp(rng.uniform(*log_ratio))
        w, h = int(round(math.sqrt(target * ratio))), int(round(math.sqrt(target / ratio)))
        if 0 < w <= square and 0 < h <= square:
            return int(rng.integers(0, square - h + 1)), int(rng.integers(0, square - w + 1)), h, w
    return 0, 0, square, square


def crop_view(square: torch.Tensor, box, flip: bool, size: int) -> torch.Tensor:
    """The view: box (top, left, height, width) of a (3, S, S) uint8 square, resized to size x size (bilinear,
    antialiased: what RandomResizedCrop does), mirrored when flip. uint8 (3, size, size)."""
    top, left, h, w = (int(x) for x in box)
    out = TF.resized_crop(square, top, left, h, w, [size, size], antialias=True)
    return out.flip(-1) if flip else out


def _normalised(images: list[torch.Tensor], cfg: DataConfig) -> torch.Tensor:
    x = torch.stack(images).float().div_(255.0)
    mean = torch.tensor(cfg.mean).view(1, 3, 1, 1)
    std = torch.tensor(cfg.std).view(1, 3, 1, 1)
    return ((x - mean) / std).contiguous(memory_format=torch.channels_last)


@dataclass
class StoredViews:
    """K views of each decoded image and the teacher's probabilities on each, rows aligned with decoded images."""

    boxes: np.ndarray  # (n, K, 4) int32
    flips: np.ndarray  # (n, K) bool
    probs: np.ndarray  # (n, K, C) float32, rows sum to one (top-k entries expanded)
    geometry: ViewGeometry
    precision: str  # what the teacher ran in
    from_cache: int = 0  # views per image read back rather than computed
    seconds: float = 0.0
    checks: dict = field(default_factory=dict)  # bf16 agreement, mixing fidelity

    @property
    def k(self) -> int:
        return self.boxes.shape[1]

    def targets(self) -> torch.Tensor:
        """(n * K, C) float32: the row of view v of image k is k * K + v."""
        return torch.from_numpy(self.probs.reshape(-1, self.probs.shape[-1]).astype(np.float32))

    def teacher_input(self, decoded: DecodedImages, k: int, v: int, cfg: DataConfig) -> torch.Tensor:
        """View v of decoded image k as the teacher sees it: (1, 3, s, s) normalised at cfg's training size."""
        return _normalised([crop_view(decoded.square(k), self.boxes[k, v], bool(self.flips[k, v]),
                                      cfg.training_size)], cfg)


def views_key(teacher: torch.nn.Module, teacher_cfg: DataConfig, decoded: DecodedImages, geometry: ViewGeometry,
              precision: str, classes: int) -> str:
    if decoded.path is None:
        raise ValueError("stored views need decoded images from the decoded-image cache (they are keyed by it)")
    return stable_hash({"teacher": module_fingerprint(teacher), "teacher_cfg": teacher_cfg.cache_dict(),
                        "images": decoded.path.stem, "n": len(decoded), "geometry": geometry.to_dict(),
                        "precision": precision, "classes": classes, "storage": _storage(classes),
                        "format": VIEWS_FORMAT}, length=24)


def _storage(classes: int) -> str:
    return "full" if classes <= FULL_PROBS_UP_TO else f"top{TOP_K}"


def cached_views(teacher: torch.nn.Module, teacher_cfg: DataConfig, decoded: DecodedImages, geometry: ViewGeometry,
                 classes: int, cache_dir, precision: str = "auto") -> StoredViews | None:
    """The views stored for these images and this teacher (any number of them), or None."""
    key = views_key(teacher, teacher_cfg, decoded, geometry, precision, classes)
    return load_result(cache_dir, KIND, key, lambda meta, arrays: _validated(meta, arrays, len(decoded), classes,
                                                                               geometry))


def measure_view_cost(teacher: torch.nn.Module, teacher_cfg: DataConfig, decoded: DecodedImages,
                      geometry: ViewGeometry, precision: str = "auto", batch_size: int = 64) -> tuple[str, dict]:
    """(precision, checks) as choose_precision finds them on the first views: what teacher_views(chosen=) takes."""
    boxes, flips = draw_views(min(len(decoded), CHECK_BATCHES * batch_size), 0, 1, geometry)
    return choose_precision(teacher, teacher_cfg, decoded, boxes, flips, precision, batch_size)


def teacher_views(teacher: torch.nn.Module, teacher_cfg: DataConfig, decoded: DecodedImages, geometry: ViewGeometry,
                  k: int, classes: int, cache_dir, *, precision: str = "auto", batch_size: int = 64,
                  progress: bool = False, chosen: tuple[str, dict] | None = None) -> StoredViews:
    """K stored views of every decoded image with the teacher's probabilities: read back from the cache, and the
    views it lacks computed now (and the entry rewritten). chosen: the precision and its checks, when already
    measured (measure_view_cost)."""
    if k < 1:
        raise ValueError(f"views per image must be at least 1, not {k}")
    start = time.perf_counter()
    key = views_key(teacher, teacher_cfg, decoded, geometry, precision, classes)
    stored = cached_views(teacher, teacher_cfg, decoded, geometry, classes, cache_dir, precision)
    have = 0 if stored is None else stored.k
    if stored is not None and have >= k:
        views = StoredViews(stored.boxes[:, :k], stored.flips[:, :k], stored.probs[:, :k], geometry,
                            stored.precision, from_cache=k, checks=stored.checks)
        views.seconds = time.perf_counter() - start
        log.info("teacher views: %d per image for %d images read from the cache (%.1fs)", k, len(decoded),
                 views.seconds)
        return views
    boxes, flips = draw_views(len(decoded), have, k, geometry)
    if stored is not None:
        checks, used = stored.checks, stored.precision
    else:
        used, checks = chosen or choose_precision(teacher, teacher_cfg, decoded, boxes, flips, precision, batch_size)
        checks = dict(checks)
    probs = judge_views(teacher, teacher_cfg, decoded, boxes, flips, used, batch_size, progress)
    if stored is not None:
        boxes = np.concatenate([stored.boxes, boxes], axis=1)
        flips = np.concatenate([stored.flips, flips], axis=1)
        probs = np.concatenate([stored.probs, probs], axis=1)
    views = StoredViews(boxes, flips, probs, geometry, used, from_cache=have, checks=checks)
    # seconds spent computing the stored views, over every run that added some
    views.checks["views_seconds"] = round(float(checks.get("views_seconds", 0.0)) * (stored is not None)
                                          + time.perf_counter() - start, 2)
    views.checks["views_computed"] = views.k  # views per image the seconds above paid for
    if "mix" not in views.checks:
        views.checks["mix"] = mixing_fidelity(teacher, teacher_cfg, decoded, views, used)
    _save(cache_dir, key, views, classes)
    views.seconds = time.perf_counter() - start
    log.info("teacher views: %d per image for %d images (%d from the cache) in %.1fs, teacher in %s", k,
             len(decoded), have, views.seconds, used)
    return views


@torch.inference_mode()
def _teacher_probs(teacher: torch.nn.Module, x: torch.Tensor, precision: str) -> np.ndarray:
    with autocast(precision, x.device):
        logits = teacher(x)
    return torch.softmax(logits.float(), dim=1).numpy()


def _batches(n: int, k: int, batch_size: int):
    """(image, view) pairs in batches, image-major: consecutive reads of the decoded squares."""
    pairs = [(i, v) for i in range(n) for v in range(k)]
    for start in range(0, len(pairs), batch_size):
        yield pairs[start : start + batch_size]


def _inputs(decoded: DecodedImages, boxes, flips, pairs, cfg: DataConfig) -> torch.Tensor:
    squares: dict[int, torch.Tensor] = {}
    images = []
    for i, v in pairs:
        if i not in squares:
            squares[i] = decoded.square(i)
        images.append(crop_view(squares[i], boxes[i, v], bool(flips[i, v]), cfg.training_size))
    return _normalised(images, cfg)


def choose_precision(teacher, teacher_cfg, decoded, boxes, flips, requested: str, batch_size: int) -> tuple[str, dict]:
    """(precision, checks): bf16 when asked for, or under auto when the CPU/GPU runs it natively and it agrees with
    fp32 on the first CHECK_BATCHES batches of real views (top-1, probabilities) and is faster; else fp32.
    checks["seconds_per_view"] is what a view costs in the chosen precision (crop + forward), measured here."""
    teacher.eval()
    try_bf16 = requested == "bf16" or (requested == "auto" and bf16_supported(torch.device("cpu")))
    agree = diff = seconds32 = seconds16 = prepare = 0.0
    n = 0
    for b, pairs in enumerate(_batches(len(decoded), boxes.shape[1], batch_size)):
        if b == (CHECK_BATCHES if try_bf16 else 1):
            break
        t0 = time.perf_counter()
        x = _inputs(decoded, boxes, flips, pairs, teacher_cfg)
        prepare += time.perf_counter() - t0
        if b == 0:  # the first call in a precision pays one-off set-up
            _teacher_probs(teacher, x[:2], "fp32")
            if try_bf16:
                _teacher_probs(teacher, x[:2], "bf16")
        t0 = time.perf_counter()
        p32 = _teacher_probs(teacher, x, "fp32")
        seconds32 += time.perf_counter() - t0
        if try_bf16:
            t0 = time.perf_counter()
            p16 = _teacher_probs(teacher, x, "bf16")
            seconds16 += time.perf_counter() - t0
            agree += float((p32.argmax(1) == p16.argmax(1)).sum())
            diff += float(np.abs(p32 - p16).sum(1).sum())
        n += len(pairs)
    n = max(n, 1)
    if not try_bf16:
        return "fp32", {"bf16": "not tried", "seconds_per_view": round((prepare + seconds32) / n, 5)}
    checks = {"bf16_top1_agreement": round(agree / n, 4), "bf16_prob_diff": round(diff / n, 4),
              "bf16_speedup": round(seconds32 / max(seconds16, 1e-9), 2), "checked_views": n}
    ok = checks["bf16_top1_agreement"] >= MIN_BF16_AGREEMENT and checks["bf16_prob_diff"] <= MAX_BF16_PROB_DIFF
    use = requested == "bf16" or (ok and seconds16 < seconds32)
    checks["bf16"] = ("asked for" if requested == "bf16" else "used" if use
                      else "agrees but is not faster: fp32 used" if ok else "disagrees: fp32 used")
    checks["seconds_per_view"] = round((prepare + (seconds16 if use else seconds32)) / n, 5)
    log.info("teacher views: bf16 vs fp32 on %d views: top-1 agreement %.4f, probability difference %.4f, "
             "%.2fx the speed: %s", n, checks["bf16_top1_agreement"], checks["bf16_prob_diff"],
             checks["bf16_speedup"], "bf16" if use else "fp32")
    return ("bf16" if use else "fp32"), checks


def judge_views(teacher, teacher_cfg, decoded, boxes, flips, precision: str, batch_size: int,
                progress: bool = False) -> np.ndarray:
    """(n, K, C) float32: the teacher's probabilities on each view."""
    from tqdm.auto import tqdm

    teacher.eval()
    n, k = boxes.shape[:2]
    out: np.ndarray | None = None
    with tqdm(total=n * k, desc="teacher views", unit="view", disable=not progress, leave=False) as bar:
        for pairs in _batches(n, k, batch_size):
            p = _teacher_probs(teacher, _inputs(decoded, boxes, flips, pairs, teacher_cfg), precision)
            if out is None:
                out = np.zeros((n, k, p.shape[1]), dtype=np.float32)
            rows = np.array(pairs)
            out[rows[:, 0], rows[:, 1]] = p
            bar.update(len(pairs))
    return out


def compress(probs: np.ndarray, classes: int) -> dict[str, np.ndarray]:
    """The arrays stored: all probabilities (float16) or the top TOP_K (indices and values)."""
    if _storage(classes) == "full":
        return {"probs": probs.astype(np.float16)}
    top = np.argsort(-probs, axis=-1)[..., :TOP_K]
    return {"top_index": top.astype(np.int16), "top_prob": np.take_along_axis(probs, top, -1).astype(np.float16)}


def expand(arrays: dict[str, np.ndarray], classes: int) -> np.ndarray:
    """(n, K, C) float32 rows summing to one, from compress's arrays (the mass outside the top-k spread evenly)."""
    if "probs" in arrays:
        p = arrays["probs"].astype(np.float32)
        return p / p.sum(-1, keepdims=True)
    index, top = arrays["top_index"].astype(np.int64), arrays["top_prob"].astype(np.float32)
    rest = np.clip(1.0 - top.sum(-1, keepdims=True), 0.0, None) / max(classes - index.shape[-1], 1)
    p = np.broadcast_to(rest, index.shape[:-1] + (classes,)).copy()
    np.put_along_axis(p, index, top, -1)
    return p / p.sum(-1, keepdims=True)


def _save(cache_dir, key: str, views: StoredViews, classes: int) -> None:
    meta = {"k": views.k, "n": len(views.boxes), "classes": classes, "precision": views.precision,
            "geometry": views.geometry.to_dict(), "checks": views.checks}
    save_result(cache_dir, KIND, key, meta, {"boxes": views.boxes, "flips": views.flips,
                                             **compress(views.probs, classes)})


def _validated(meta: dict, arrays: dict, n: int, classes: int, geometry: ViewGeometry) -> StoredViews:
    """The entry as StoredViews, or BadEntry: shapes, boxes inside the square, probabilities that are ones."""
    k = int(meta["k"])
    if int(meta["n"]) != n or int(meta["classes"]) != classes or meta["geometry"] != geometry.to_dict():
        raise BadEntry("written for other images, classes or view geometry")
    if meta["precision"] not in ("fp32", "bf16") or not isinstance(meta.get("checks"), dict):
        raise BadEntry("no precision or checks recorded")
    boxes, flips = arrays["boxes"], arrays["flips"]
    if boxes.shape != (n, k, 4) or boxes.dtype.kind not in "iu" or flips.shape != (n, k) or flips.dtype != bool:
        raise BadEntry(f"boxes {boxes.shape} / flips {flips.shape} do not fit {n} images x {k} views")
    top, left, h, w = (boxes[..., i] for i in range(4))
    s = geometry.square
    if (h <= 0).any() or (w <= 0).any() or (top < 0).any() or (left < 0).any() or (top + h > s).any() \
            or (left + w > s).any():
        raise BadEntry(f"a crop box lies outside the {s} px square")
    if "probs" in arrays:
        raw = arrays["probs"]
        if raw.shape != (n, k, classes):
            raise BadEntry(f"probabilities {raw.shape}, expected {(n, k, classes)}")
    else:
        index, raw = arrays["top_index"], arrays["top_prob"]
        if index.shape != raw.shape or index.shape[:2] != (n, k) or index.min() < 0 or index.max() >= classes:
            raise BadEntry("top-k indices do not fit the classes")
    raw32 = raw.astype(np.float32)
    if not np.isfinite(raw32).all() or (raw32 < 0).any() or (raw32.sum(-1) > 1.02).any() \
            or ("probs" in arrays and (raw32.sum(-1) < 0.98).any()):
        raise BadEntry("probabilities that are not a distribution")
    return StoredViews(boxes.astype(np.int32), flips, expand(arrays, classes), geometry, meta["precision"],
                       checks=dict(meta["checks"]))


@torch.inference_mode()
def mixing_fidelity(teacher, teacher_cfg: DataConfig, decoded: DecodedImages, views: StoredViews, precision: str,
                    pairs: int = MIX_CHECK_PAIRS) -> dict:
    """How close the mixed stored label lam * p(a) + (1 - lam) * p(b) is to the teacher's own output on the mixed
    view lam * a + (1 - lam) * b, on `pairs` random pairs of stored views: top-1 agreement, mean total variation
    distance (0: identical, 1: disjoint) and, for scale, the same distance for the teacher's output on the
    mixed view against that on the view with the larger share alone."""
    g = np.random.default_rng(VIEW_SEED + 1)
    n, k = views.boxes.shape[:2]
    a, b = g.integers(0, n, pairs), g.integers(0, n, pairs)
    va, vb = g.integers(0, k, pairs), g.integers(0, k, pairs)
    lam = g.uniform(0.0, 1.0, pairs).astype(np.float32)
    xa = _inputs(decoded, views.boxes, views.flips, list(zip(a, va)), teacher_cfg)
    xb = _inputs(decoded, views.boxes, views.flips, list(zip(b, vb)), teacher_cfg)
    lt = torch.from_numpy(lam).view(-1, 1, 1, 1)
    own = _teacher_probs(teacher, (lt * xa + (1 - lt) * xb).contiguous(memory_format=torch.channels_last),
                         precision)
    pa, pb = views.probs[a, va], views.probs[b, vb]
    mixed = lam[:, None] * pa + (1 - lam[:, None]) * pb
    major = np.where(lam[:, None] >= 0.5, pa, pb)
    tv = 0.5 * np.abs(mixed - own).sum(1)
    return {"pairs": int(pairs), "top1_agreement": round(float((mixed.argmax(1) == own.argmax(1)).mean()), 4),
            "mean_tv": round(float(tv.mean()), 4),
            "mean_tv_major_view": round(float((0.5 * np.abs(major - own).sum(1)).mean()), 4)}


class StoredViewImages(Dataset):
    """The training images as their stored views: item k of epoch e is view v of decoded image k (each view once
    in every K epochs, in an order drawn from the run's seed), re-cropped at the student's size from the decoded
    square and mirrored as stored. Its index is the view's row in StoredViews.targets(): k * K + v."""

    def __init__(self, decoded: DecodedImages, views: StoredViews, student_cfg: DataConfig, seed: int = 0):
        if len(decoded) != len(views.boxes):
            raise ValueError(f"{len(decoded)} decoded images but views for {len(views.boxes)}")
        self.decoded, self.views, self.cfg, self.seed = decoded, views, student_cfg, seed
        self.epoch = 0
        self.labels = decoded.labels
        self.mean = torch.tensor(student_cfg.mean).view(3, 1, 1)
        self.std = torch.tensor(student_cfg.std).view(3, 1, 1)

    def __len__(self) -> int:
        return len(self.decoded)

    def view_of(self, k: int, epoch: int) -> int:
        n_views = self.views.k
        cycle, position = divmod(max(epoch - 1, 0), n_views)
        order = np.random.default_rng(epoch_seed(self.seed, cycle, k + 1)).permutation(n_views)
        return int(order[position])

    def __getitem__(self, k: int):
        v = self.view_of(k, self.epoch)
        image = crop_view(self.decoded.square(k), self.views.boxes[k, v], bool(self.views.flips[k, v]),
                          self.cfg.training_size)
        x = (image.float().div_(255.0) - self.mean) / self.std
        return k * self.views.k + v, x, int(self.labels[k])


__all__ = ["StoredViews", "StoredViewImages", "ViewGeometry", "teacher_views", "draw_views", "crop_view",
           "mixing_fidelity", "choose_precision", "compress", "expand"]
