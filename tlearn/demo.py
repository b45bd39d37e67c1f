"""`tlearn demo`: the main job on real images that arrive with a package, so it runs on a fresh machine.

Sources, the first one found is used (SOURCES):
- Fashion-MNIST from Debian's `dataset-fashion-mnist` (Zalando's 28x28 product photos, 10 classes);
- scikit-image's LFW subset, shipped inside the scikit-image wheel (a dependency): 25x25 photos, 100 faces and
  100 background crops from Labeled Faces in the Wild;
- scikit-learn's bundled handwritten digits (8x8 scans, 10 classes).
A stratified, class-balanced subset is written once as a train/val/test class-folder tree in the tlearn cache,
then trained on like any user folder. Per-class counts are cut down to what the source has.

The study that follows trains scratch and the linear probe on nested subsets from two labelled images per class
up to all of them (DEMO_LABELS_PER_CLASS, DEMO_SEEDS seeds), because that is where the curves separate: on a
source as easy as the LFW crops both reach the ceiling with every label, and transfer's worth is how few labels
it needs to get near it. label_savings() gives that figure: the labelled images each strategy needs to reach a
target accuracy below scratch's best (TARGET_SHARE of it), and the share of labels the transfer strategy saves.
"""
from __future__ import annotations

import gzip
import logging
import math
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from PIL import Image

from .errors import DataError
from .files import default_cache_dir

log = logging.getLogger("tlearn")

SPLITS = ("train", "val", "test")
DEFAULT_PER_CLASS = {"train": 60, "val": 30, "test": 30}
MIN_PER_CLASS = {"train": 2, "val": 1, "test": 1}  # the least a class can have in each split and still be trained
# The demo's study: labelled images per class from 2 up to all of them, 3 seeds; a few minutes on 2 CPU cores
DEMO_LABELS_PER_CLASS = (2, 4, 10)  # and all of them; sizes at or above the training images per class drop out
DEMO_SEEDS = 3
# Every cell, the smallest included, trains for at least the optimizer steps the study preset gives scratch on all
# the images: the cells share their epochs, so with the preset's epochs the small subsets would get a handful of
# steps and an undertrained scratch would flatter transfer. No early stopping either: scratch on a few images sits
# at chance for dozens of epochs before it learns (docs/results.md#the-demos-study). A cell's training stops at
# DEMO_CELL_SECONDS all the same, which LFW's cells stay under and which bounds a large source's (Fashion-MNIST).
DEMO_CELL_SECONDS = 45
TARGET_SHARE = 0.9  # label_savings: the target accuracy is this share of scratch's best mean accuracy
CATCH_UP = 0.02  # scratch "catches up" from the size on which it stays within this of the transfer strategy
FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_FILES = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
                 "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}
FASHION_CLASSES = ["t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag",
                   "ankle-boot"]


@dataclass
class Source:
    """Images of one demo data source, as uint8 arrays (N, H, W) with integer labels.

    pools: "train" and "test" when the source ships its own test images (test is drawn only from "test"),
    else one pool "all" that train, val and test are drawn from, disjointly.
    """
    name: str
    description: str
    classes: list[str]
    pools: dict[str, tuple[np.ndarray, np.ndarray]]


@dataclass
class DemoData:
    name: str
    source: str
    path: Path
    counts: dict[str, int]  # split -> images
    per_class: dict[str, int] = field(default_factory=dict)  # split -> images of each class
    classes: list[str] = field(default_factory=list)


def _read_idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[:2] != b"\0\0" or raw[2] != 0x08:
        raise DataError(f"{path} is not an idx file of unsigned bytes; reinstall dataset-fashion-mnist.")
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    offset = 4 + 4 * ndim
    if len(raw) - offset != int(np.prod(shape)):
        raise DataError(f"{path} is truncated ({len(raw) - offset} bytes for shape {shape}); "
                        "reinstall dataset-fashion-mnist.")
    return np.frombuffer(raw, dtype=np.uint8, offset=offset).reshape(shape)


def fashion_mnist() -> Source | None:
    if not all((FASHION_DIR / f).is_file() for pair in FASHION_FILES.values() for f in pair):
        return None
    pools = {split: (_read_idx(FASHION_DIR / images), _read_idx(FASHION_DIR / labels))
             for split, (images, labels) in FASHION_FILES.items()}
    return Source("fashion-mnist", f"Zalando's Fashion-MNIST, 28x28 product photos, from Debian's "
                  f"dataset-fashion-mnist ({FASHION_DIR})", FASHION_CLASSES, pools)


def lfw_faces() -> Source | None:
    try:
        from skimage.data import lfw_subset

        images = lfw_subset()
    except (ImportError, OSError, ValueError) as exc:  # not installed, or its data files stripped by a distro
        log.info("scikit-image's LFW subset is not available (%s)", exc)
        return None
    images = np.clip(np.rint(np.asarray(images, dtype=np.float64) * 255), 0, 255).astype(np.uint8)
    labels = np.repeat([0, 1], len(images) // 2)  # the first half are faces, the second half background
    return Source("lfw-faces", "25x25 photos from Labeled Faces in the Wild, faces vs background crops, shipped "
                  "in the scikit-image package", ["face", "background"], {"all": (images, labels)})


def sklearn_digits() -> Source:
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.clip(digits.images * 16, 0, 255).astype(np.uint8)  # 0..16 -> 0..255
    return Source("digits", "8x8 scans of handwritten digits, shipped in the scikit-learn package",
                  [str(d) for d in range(10)], {"all": (images, digits.target)})


SOURCES: list[Callable[[], Source | None]] = [fashion_mnist, lfw_faces, sklearn_digits]


def load_source() -> Source:
    """The first available source of SOURCES."""
    for loader in SOURCES:
        source = loader()
        if source is not None:
            return source
    raise DataError("no demo images found: install scikit-learn (pip install -e .) or Debian's "
                    "dataset-fashion-mnist.")


def pool_splits(source: Source) -> dict[str, tuple[str, ...]]:
    """pool -> the splits drawn from it."""
    return {"all": SPLITS} if "all" in source.pools else {"train": ("train", "val"), "test": ("test",)}


def _class_sizes(source: Source, pool: str) -> np.ndarray:
    labels = source.pools[pool][1]
    return np.array([int(np.sum(labels == k)) for k in range(len(source.classes))])


def _fit_counts(wanted: dict[str, int], available: int) -> dict[str, int]:
    """`wanted` per-class counts, scaled down in proportion when a class has only `available` images."""
    total = sum(wanted.values())
    if available >= total:
        return dict(wanted)
    counts = {split: available * n // total for split, n in wanted.items()}
    counts[next(iter(counts))] += available - sum(counts.values())  # the rounding remainder goes to train
    return counts


def plan_per_class(source: Source, wanted: dict[str, int] | None = None) -> dict[str, int]:
    """Images of each class in each split: `wanted` where every class has enough, else what the smallest class
    allows (the same for every class, so the demo stays balanced). A clear error when that is too few."""
    wanted = dict(wanted or DEFAULT_PER_CLASS)
    if set(wanted) != set(SPLITS) or any(int(n) < MIN_PER_CLASS[s] for s, n in wanted.items()):
        raise DataError(f"demo per-class counts must give train >= {MIN_PER_CLASS['train']}, val >= 1 and "
                        f"test >= 1; got {wanted}.")
    plan: dict[str, int] = {}
    for pool, splits in pool_splits(source).items():
        sizes = _class_sizes(source, pool)
        smallest = int(np.argmin(sizes))
        counts = _fit_counts({s: int(wanted[s]) for s in splits}, int(sizes[smallest]))
        short = [s for s in splits if counts[s] < MIN_PER_CLASS[s]]
        if short:
            need = sum(MIN_PER_CLASS[s] for s in splits)
            raise DataError(f"demo source {source.name}: class '{source.classes[smallest]}' has "
                            f"{sizes[smallest]} image(s) in its {pool} images, too few for {'/'.join(splits)} "
                            f"(at least {need}); use another source (see tlearn/demo.py SOURCES).")
        plan.update(counts)
    return {s: plan[s] for s in SPLITS}


def choose_indices(source: Source, per_class: dict[str, int], seed: int) -> dict[str, list[list[int]]]:
    """split -> for each class, the indices (into that split's pool) of its images; disjoint across splits."""
    rng = np.random.default_rng(seed)
    chosen: dict[str, list[list[int]]] = {s: [] for s in SPLITS}
    for k in range(len(source.classes)):
        for pool, splits in pool_splits(source).items():
            order = rng.permutation(np.flatnonzero(source.pools[pool][1] == k))
            start = 0
            for s in splits:
                chosen[s].append(order[start:start + per_class[s]].tolist())
                start += per_class[s]
    return chosen


def _write_tree(source: Source, chosen: dict[str, list[list[int]]], root: Path) -> None:
    """Write the class-folder tree into a temporary folder, then move it to `root` in one step."""
    tmp = root.with_name(f".{root.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    pool_of = {split: pool for pool, splits in pool_splits(source).items() for split in splits}
    for split, per_class in chosen.items():
        images = source.pools[pool_of[split]][0]
        for cls, indices in zip(source.classes, per_class):
            folder = tmp / split / cls
            folder.mkdir(parents=True, exist_ok=True)
            for i in indices:
                Image.fromarray(images[i]).save(folder / f"{split}_{i}.png")
    (tmp / ".complete").write_text(source.description + "\n")
    try:
        tmp.rename(root)
    except OSError:  # another process finished the same tree first; theirs is identical
        shutil.rmtree(tmp, ignore_errors=True)
        if not (root / ".complete").is_file():
            raise


def prepare_demo_data(root: Path | None = None, per_class: dict[str, int] | None = None, seed: int = 0) -> DemoData:
    """Write (once) a class-balanced train/val/test class tree of the demo images and return where it is."""
    source = load_source()
    counts = plan_per_class(source, per_class)
    folder = Path(root or default_cache_dir() / "demo") / (
        f"{source.name}-{'-'.join(str(counts[s]) for s in SPLITS)}-seed{seed}")
    if not (folder / ".complete").is_file():
        if folder.exists():
            raise DataError(f"{folder} exists but is not a finished demo tree (no .complete); delete it and run "
                            "tlearn demo again.")
        folder.parent.mkdir(parents=True, exist_ok=True)
        _write_tree(source, choose_indices(source, counts, seed), folder)
    n = len(source.classes)
    return DemoData(source.name, source.description, folder, {s: counts[s] * n for s in SPLITS}, counts,
                    list(source.classes))


def run_demo(out: str | Path = "tlearn-demo", progress: bool = True, study: bool = True,
             per_class: dict[str, int] | None = None) -> dict:
    """Prepare the data, train a linear probe on the default backbone, evaluate; then (study=True) a short
    transfer study against training from scratch. Return what happened (see summary_lines)."""
    from .fitting import fit

    start = time.perf_counter()
    data = prepare_demo_data(per_class=per_class)
    log.info("demo data: %s (%s)\n  %s (train %d, val %d, test %d images)", data.name, data.source, data.path,
             data.counts["train"], data.counts["val"], data.counts["test"])
    run = fit(data.path, Path(out) / "linear-probe", progress=progress, overwrite=True)  # the demo owns its folder
    result = {"data": data, "out": Path(out), "runs": {"linear-probe": run}}
    if study:
        from .study.runner import run_study

        result["study"] = run_study(demo_study(data, Path(out) / "study"))
    result["seconds"] = time.perf_counter() - start
    return result


def demo_study(data: DemoData, out: Path):
    """The demo's StudyConfig: scratch vs linear-probe at study_fractions, DEMO_SEEDS seeds, with epochs enough
    for DEMO_MIN_STEPS optimizer steps on the smallest subset, each cell's training capped at DEMO_CELL_SECONDS."""
    from .constants import DEFAULT_TRAIN_BATCH_SIZE
    from .study.presets import DEMO_MIN_STEPS, demo_study_config

    config = demo_study_config(data.path, out, train_images=data.counts["train"])
    smallest = min(data.per_class["train"], DEMO_LABELS_PER_CLASS[0]) * len(data.classes)
    steps_per_epoch = math.ceil(smallest / DEFAULT_TRAIN_BATCH_SIZE)
    epochs = max(int(config.fit["epochs"]), math.ceil(DEMO_MIN_STEPS / steps_per_epoch))
    return replace(config, fractions=study_fractions(data.per_class["train"]), seeds=DEMO_SEEDS,
                   fit={**config.fit, "epochs": epochs}, budget_minutes=DEMO_CELL_SECONDS / 60)


def study_fractions(train_per_class: int) -> list[float]:
    """The study's labelled fractions: DEMO_LABELS_PER_CLASS images of each class, then all of them."""
    return [n / train_per_class for n in DEMO_LABELS_PER_CLASS if n < train_per_class] + [1.0]


def _accuracies(block: dict) -> str:
    return " / ".join(f"{block[s]['accuracy']:.3f}" if s in block else "  –  " for s in ("val", "test"))


def summary_lines(result: dict) -> list[str]:
    """The plain summary `tlearn demo` prints last: data, accuracy of each strategy, reports, what next."""
    data: DemoData = result["data"]
    pc = data.per_class
    lines = [f"tlearn demo finished in {result['seconds']:.0f} s.", "",
             f"Data: {data.name}, {data.source}.",
             f"  {len(data.classes)} classes ({', '.join(data.classes)}); per class: train {pc['train']}, "
             f"val {pc['val']}, test {pc['test']}; in all: train {data.counts['train']}, val {data.counts['val']}, "
             f"test {data.counts['test']} images",
             f"  {data.path}", "", "Accuracy (val / test):"]
    reports = []
    for name, run in result["runs"].items():
        lines.append(f"  {name:<14} {_accuracies(run.metrics)}   ({run.config['backbone']['name']}, "
                     f"{run.data_config.input_size} px, all training images)")
        reports.append(Path(run.path).resolve() / "report.html")
    if "study" in result:
        done = result["study"]
        fit_opts = done.study.get("fit_options", {})
        budget = f" or {fit_opts['max_seconds']:.0f} s" if fit_opts.get("max_seconds") else ""
        lines.append(f"  transfer study at {fit_opts.get('image_size', '?')} px, {fit_opts.get('epochs', '?')} epochs"
                     f"{budget} per cell, {_seeds(done.study)}; {done.summary.get('metric', 'accuracy')} (mean over "
                     "seeds) by labelled training images:")
        lines += [f"    {line}" for line in curve_lines(done.summary)]
        lines += [f"  {line}" for line in savings_lines(label_savings(done.summary), done.summary)]
        lines += [f"  {s}" for s in done.summary.get("sentences", []) if s.startswith("Faster convergence")]
        reports.append(Path(done.report).resolve())
    lines += ["", "Reports (open in a browser):"] + [f"  {p}" for p in reports]
    lines += ["", "Next, on your own images (class folders DATA/train/CLASS/*.jpg, optional DATA/val and DATA/test):",
              "  tlearn fit DATA --out RUN            # linear probe on the default backbone",
              "  tlearn evaluate RUN DATA/test        # metrics on labelled images",
              "  tlearn predict RUN IMAGE_OR_FOLDER   # CSV: path,predicted,probability",
              "  tlearn study DATA --out STUDY        # does transfer beat training from scratch on your data?"]
    return lines


def _seeds(study: dict) -> str:
    n = study.get("config", {}).get("seeds", "?")
    return f"{n} seed{'s' if n != 1 else ''}"


def accuracy_curves(summary: dict) -> dict[str, dict[float, float]]:
    """strategy -> {labelled training images (mean over seeds): mean accuracy}, from summary.json's table."""
    curves: dict[str, dict[float, float]] = {}
    for row in summary.get("table", []):
        if row.get("accuracy_mean") is not None and row.get("n_train") is not None:
            curves.setdefault(row["strategy"], {})[float(row["n_train"])] = float(row["accuracy_mean"])
    return {s: dict(sorted(c.items())) for s, c in curves.items()}


def labels_to_reach(curve: dict[float, float], target: float) -> float | None:
    """The fewest labelled images (of those tested) at which the mean accuracy is at least target."""
    return next((n for n, acc in sorted(curve.items()) if acc >= target - 1e-9), None)


def label_savings(summary: dict, share: float = TARGET_SHARE, baseline: str = "scratch") -> dict:
    """Labels each strategy needs for a target accuracy below the ceiling: `share` of the baseline's best mean
    accuracy over the tested sizes. {"target", "baseline_best", "needed": {strategy: images or None},
    "saved": {strategy: 1 - needed/baseline's needed, or None}, "gain_at_fewest": {strategy: (images, gain)}}.
    Sizes are the tested ones only, so `needed` is an upper bound and `saved` is measured, not interpolated."""
    curves = accuracy_curves(summary)
    if baseline not in curves or not curves[baseline]:
        return {}
    best = max(curves[baseline].values())
    target = share * best
    needed = {s: labels_to_reach(c, target) for s, c in curves.items()}
    base_needed = needed[baseline]
    saved = {s: (None if n is None or not base_needed else 1.0 - n / base_needed)
             for s, n in needed.items() if s != baseline}
    fewest = min(curves[baseline])
    gains = {s: (fewest, c[fewest] - curves[baseline][fewest]) for s, c in curves.items()
             if s != baseline and fewest in c}
    caught_up = {s: catches_up(curves[baseline], c) for s, c in curves.items() if s != baseline}
    return {"share": share, "target": target, "baseline": baseline, "baseline_best": best, "needed": needed,
            "saved": saved, "gain_at_fewest": gains, "caught_up": caught_up}


def catches_up(baseline: dict[float, float], curve: dict[float, float], tolerance: float = CATCH_UP) -> float | None:
    """The fewest labelled images from which the baseline stays within `tolerance` of (or above) the curve at
    every larger tested size; None when it is further behind even with all the labels."""
    sizes = sorted(n for n in curve if n in baseline)
    start = None
    for n in reversed(sizes):
        if baseline[n] < curve[n] - tolerance:
            break
        start = n
    return start


def _images(n: float) -> str:
    return f"{n:.0f}" if float(n).is_integer() else f"{n:.1f}"


def curve_lines(summary: dict) -> list[str]:
    """A small table: one column per tested number of labelled images, one row per strategy."""
    curves = accuracy_curves(summary)
    sizes = sorted({n for c in curves.values() for n in c})
    if not sizes:
        return []
    lines = [f"{'labelled images':<16}" + "".join(f"{_images(n):>7}" for n in sizes)]
    for strategy, curve in curves.items():
        lines.append(f"{strategy:<16}" + "".join(f"{curve[n]:>7.3f}" if n in curve else f"{'–':>7}" for n in sizes))
    return lines


def savings_lines(savings: dict, summary: dict) -> list[str]:
    """Plain sentences: labels saved at the target accuracy, and the gain with the fewest labels."""
    if not savings:
        return []
    curves = accuracy_curves(summary)
    base = savings["baseline"]
    metric = summary.get("metric", "accuracy")
    lines = []
    for strategy, saved in savings["saved"].items():
        n, n_base = savings["needed"][strategy], savings["needed"][base]
        head = (f"Fewer labels: to reach {savings['target']:.3f} {metric} ({savings['share']:.0%} of {base}'s best, "
                f"{savings['baseline_best']:.3f}), {strategy} needed ")
        if n is None:
            lines.append(head + f"more labelled images than tested (best {max(curves[strategy].values()):.3f}); "
                         f"{base} needed {_images(n_base)}: no labels saved.")
        else:
            lines.append(head + f"{_images(n)} labelled images, {base} {_images(n_base)}: "
                         f"{saved:.0%} of the labels saved.")
    top = max(curves[base])
    for strategy, (fewest, gain) in savings["gain_at_fewest"].items():
        at_top = curves[strategy].get(top)
        base_top = curves[base][top]
        tail = (f"; with all {_images(top)}, {at_top:.3f} against {base_top:.3f} ({at_top - base_top:+.3f})"
                if at_top is not None else "")
        lines.append(f"Higher accuracy: with {_images(fewest)} labelled images {strategy} reaches "
                     f"{curves[strategy][fewest]:.3f} against {base}'s {curves[base][fewest]:.3f} ({gain:+.3f}){tail}.")
        caught = savings.get("caught_up", {}).get(strategy)
        if caught is None:
            lines.append(f"Where the curves meet: nowhere tested; {base} stays more than {CATCH_UP:.2f} below "
                         f"{strategy} at every size, all {_images(top)} labelled images included.")
        elif caught > fewest:
            lines.append(f"Where the curves meet: from {_images(caught)} labelled images {base} is within "
                         f"{CATCH_UP:.2f} of {strategy} or better; transfer's gain on this task is with fewer labels.")
        else:
            lines.append(f"Where the curves meet: {base} is within {CATCH_UP:.2f} of {strategy} or better at every "
                         f"tested size, {_images(fewest)} labelled images included: transfer bought no accuracy here.")
    return lines
