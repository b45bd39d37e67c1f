"""select_images: read the pool (and the labelled images), take their cached features, pick, write DIR.

DIR/
  to_label.csv   path, rank, method, why, label (empty: fill it in; the file is then a manifest `tlearn fit`
                 reads, its rows with an empty label left out) [, predicted: the probe's guess, with --labeled]
  to_label.html  the contact sheet: each pick's thumbnail, rank and why; the files that could not be read
  selection.json the settings, counts, seconds and the unreadable files
"""
from __future__ import annotations

import csv
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .._version import __version__
from ..data.duplicates import find_duplicates
from ..data.images import is_image_file
from ..data.layout import list_images, load_splits
from ..data.leakage import digest_or_none
from ..data.samples import Sample, SkippedFile
from ..device import settle_runtime
from ..errors import DataError, TlearnError
from ..features.extract import extract_features
from ..files import atomic_path, atomic_write_text, spreadsheet_plain, spreadsheet_row
from ..runs.source import load_source
from ..strategies.linear_probe import LinearProbe
from ..strategies.probe_cache import fit_probe
from .config import LABELED_METHODS, SelectConfig, method_for
from .methods import Picker, choose, embed

log = logging.getLogger("tlearn")

TO_LABEL, PAGE, SUMMARY = "to_label.csv", "to_label.html", "selection.json"
COLUMNS = ["path", "rank", "method", "why", "label"]


@dataclass
class SelectResult:
    out: Path
    picks: list[dict]  # rows of to_label.csv
    method: str
    summary: dict  # selection.json
    skipped: list[SkippedFile] = field(default_factory=list)

    @property
    def csv(self) -> Path:
        return self.out / TO_LABEL

    @property
    def page(self) -> Path:
        return self.out / PAGE


def refuse_existing(out: Path, overwrite: bool) -> None:
    """A list in DIR may be half labelled: never replaced unless asked."""
    if out.exists() and not out.is_dir():
        raise TlearnError(f"--out {out} exists and is not a folder; choose another folder.")
    there = [name for name in (TO_LABEL, PAGE, SUMMARY) if (out / name).exists()]
    if there and not overwrite:
        raise TlearnError(f"--out {out} already holds {', '.join(there)} (perhaps labelled already); choose another "
                          "folder, or add --overwrite to replace them (other files there are kept).")


def read_pool(pool: str | Path) -> tuple[list[Path], list[SkippedFile]]:
    """The pool's image files: a folder searched recursively, or a CSV's path column (relative to the CSV);
    each file once. Files listed that are not images are returned as skipped."""
    root = Path(pool).expanduser()
    if not root.exists():
        raise DataError(f"pool {root} does not exist; give a folder of images or a CSV manifest with a path column.")
    skipped: list[SkippedFile] = []
    if root.is_file():
        if root.suffix.lower() != ".csv":
            raise DataError(f"pool {root} is a file but not a .csv manifest; give a folder or a CSV with a path column.")
        with open(root, newline="") as f:
            reader = csv.DictReader(f)
            names = {c.strip().lower(): c for c in (reader.fieldnames or []) if c}
            if "path" not in names:
                raise DataError(f"pool manifest {root} needs a header with a path column.")
            paths = []
            for line, row in enumerate(reader, start=2):
                text = spreadsheet_plain((row.get(names["path"]) or "").strip())
                if not text:
                    raise DataError(f"{root} line {line}: empty path.")
                p = Path(text)
                paths.append(p if p.is_absolute() else root.parent / p)
        files = []
        for p in paths:
            if not p.is_file():
                skipped.append(SkippedFile(str(p), "file not found"))
            elif not is_image_file(p):
                skipped.append(SkippedFile(str(p), f"not an image file (extension '{p.suffix}')"))
            else:
                files.append(p)
    else:
        files = list_images(root)
    unique = list(dict.fromkeys(p.resolve() for p in files))
    if not unique:
        raise DataError(f"pool {root} has no readable image files.")
    return unique, skipped


def _labelled_samples(data: str) -> tuple[list[Sample], list[str], list[SkippedFile]]:
    """Every labelled image of DATA (train and val; test is kept for reporting) and its classes."""
    splits = load_splits(data, 0.0)
    return [*splits.train, *splits.val], splits.classes, list(splits.skipped)


def select_images(cfg: SelectConfig) -> SelectResult:
    """The cfg.budget images of cfg.pool to label next, written to cfg.out (see the module docstring)."""
    start = time.perf_counter()
    seconds: dict[str, float] = {}
    out = Path(cfg.out)
    refuse_existing(out, cfg.overwrite)
    pool, skipped = read_pool(cfg.pool)
    labelled, classes, labelled_skipped = _labelled_samples(cfg.labeled) if cfg.labeled else ([], [], [])
    per_class = len(labelled) / max(1, len(classes))
    method = method_for(cfg.method, per_class)
    if method in LABELED_METHODS and not labelled:
        raise TlearnError(f"--method {method} ranks images by the uncertainty of a probe fitted on labelled images; "
                          "add --labeled DATA, or use typiclust or probcover to start from nothing.")
    known = {Path(s.path).resolve() for s in labelled}
    pool = [p for p in pool if p not in known]
    if not pool:
        raise DataError(f"every image of the pool {cfg.pool} is already labelled in {cfg.labeled}.")

    torch.manual_seed(cfg.seed)
    device, precision, cache = settle_runtime(cfg.device, cfg.precision, cfg.cache_dir)
    module, info = load_source(cfg.backbone, cfg.weights, image_size=cfg.image_size)
    t = time.perf_counter()
    samples = [Sample(p, -1) for p in pool] + list(labelled)
    fs = extract_features(module, samples, info.data_config, precision=precision, device=device,
                          batch_size=cfg.batch_size, cache_dir=cache, num_workers=cfg.num_workers,
                          progress=cfg.progress, desc="select features")
    seconds["features"] = time.perf_counter() - t
    log.info("select: features of %d images (%d from cache) in %.1fs", len(fs.samples), fs.from_cache, fs.seconds)
    skipped += [s for s in fs.skipped]
    is_pool = np.array([s.label < 0 for s in fs.samples])
    rows_labelled = np.flatnonzero(~is_pool)
    if not is_pool.any():
        raise DataError(f"no image of the pool {cfg.pool} could be read; see the skipped files.")

    t = time.perf_counter()
    paths = [Path(s.path) for s in fs.samples]
    digests = [digest_or_none(p) for p in paths]
    where = ["pool" if p else "labelled" for p in is_pool]
    groups = find_duplicates(paths, where, ["" for _ in paths], digests, cache, fs.features, range(len(paths)))
    row_of = {str(p): i for i, p in enumerate(paths)}
    index_groups = [[row_of[p] for p in g["paths"]] for g in groups]
    seconds["duplicates"] = time.perf_counter() - t

    t = time.perf_counter()
    z = embed(fs.features, cfg.seed)
    picker = Picker(len(paths), np.flatnonzero(is_pool), index_groups)
    for i in rows_labelled:
        picker.block(int(i))
    probs, probe_info = None, {}
    if len(rows_labelled):
        y = np.array([fs.samples[i].label for i in rows_labelled])
        if len(np.unique(y)) < 2:
            raise DataError(f"--labeled {cfg.labeled}: readable labelled images of at least 2 classes are needed to "
                            "fit the probe that ranks the pool.")
        probe, cached = fit_probe(LinearProbe(seed=cfg.seed), fs.features[rows_labelled], y, cache, len(classes))
        probs = probe.predict_proba(fs.features)
        probe_info = {"labelled_images": int(len(rows_labelled)), "features": probe.treatment, "C": probe.C_,
                      "settings_from": probe.settings_source, "from_cache": cached}
    picks = choose(method, z, cfg.budget, picker, [int(i) for i in rows_labelled], cfg.seed, probs, classes)
    seconds["select"] = time.perf_counter() - t
    if len(picks) < cfg.budget:
        log.warning("select: only %d image(s) of the pool could be picked (asked for %d): the rest are labelled, "
                    "unreadable or copies of picked ones", len(picks), cfg.budget)

    rows = []
    for rank, pick in enumerate(picks, start=1):
        row = {"path": str(paths[pick.index]), "rank": rank, "method": method, "why": pick.why, "label": ""}
        if probs is not None:
            row["predicted"] = classes[int(np.argmax(probs[pick.index]))]
        rows.append(row)
    seconds["total"] = time.perf_counter() - start
    summary = {"tool": "tlearn select", "version": __version__, "pool": str(Path(cfg.pool).expanduser().resolve()),
               "labeled": str(Path(cfg.labeled).expanduser().resolve()) if cfg.labeled else None,
               "method": method, "asked": cfg.method, "budget": cfg.budget, "picked": len(rows),
               "pool_images": int(is_pool.sum()), "labelled_images": int(len(rows_labelled)),
               "copies_left_out": picker.copies_left_out, "duplicate_groups": len(groups),
               "backbone": info.to_dict(), "seed": cfg.seed, "probe": probe_info,
               "skipped": [s.to_dict() for s in [*skipped, *labelled_skipped]],
               "seconds": {k: round(v, 3) for k, v in seconds.items()}}
    write_selection(out, rows, summary)
    log.info("select: %d image(s) picked by %s from %d in %.1fs; %s", len(rows), method, summary["pool_images"],
             seconds["total"], out / TO_LABEL)
    return SelectResult(out, rows, method, summary, [*skipped, *labelled_skipped])


def write_selection(out: Path, rows: list[dict], summary: dict) -> None:
    """DIR/to_label.csv, to_label.html and selection.json (the page last: it reads thumbnails)."""
    from .sheet import render_sheet

    out.mkdir(parents=True, exist_ok=True)
    columns = COLUMNS + (["predicted"] if rows and "predicted" in rows[0] else [])
    with atomic_path(out / TO_LABEL) as tmp, open(tmp, "w", newline="", encoding="utf-8",
                                                  errors="surrogateescape") as f:
        w = csv.writer(f)
        w.writerow(columns)
        for row in rows:
            w.writerow(spreadsheet_row([row[c] for c in columns]))
    atomic_write_text(out / SUMMARY, json.dumps(summary, indent=2) + "\n")
    atomic_write_text(out / PAGE, render_sheet(rows, summary))
