"""Score candidate sources on a target's training images, best first; optionally check against a linear probe.

Features come through tlearn.features (the same cache and batched extraction a linear-probe fit uses, with each
source's own input size and normalisation), so the fit that follows a ranking reuses them.
"""
from __future__ import annotations

import gc
import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..data.layout import DataSplits, load_splits
from ..data.multilabel import refuse_multilabel
from ..errors import DataError, TlearnError
from ..features.extract import extract_features
from ..features.sharded import Extraction, fill_cache
from ..device import settle_runtime
from ..train.distributed import dist_env
from .config import RankConfig as _R  # the defaults, declared once with the command-line options
from .metrics import METRICS, NEEDS_SOURCE_OUTPUTS
from .sources import describe, load_source, source_probabilities

log = logging.getLogger("tlearn")

ALL = "all"
VERIFY = ("probe",)


@dataclass
class RankRow:
    """One source scored by one metric. seconds: loading the source, its train features (cache hits are cheap)
    and the metric; probe_accuracy: its linear probe's val accuracy (only with verify="probe")."""

    source: str
    metric: str
    score: float
    seconds: float
    probe_accuracy: float | None = None
    kind: str = ""
    input_size: int = 0
    feature_seconds: float = 0.0
    metric_seconds: float = 0.0
    features_from_cache: int = 0
    probe_seconds: float | None = None

    def public(self, verified: bool) -> dict:
        """The documented `--json` entry."""
        d = {"source": self.source, "metric": self.metric, "score": self.score, "seconds": round(self.seconds, 3)}
        if verified:
            d["probe_accuracy"] = self.probe_accuracy
        return d


@dataclass
class Ranking:
    """Rows sorted best first within each metric (metrics in the order asked)."""

    rows: list[RankRow]
    metrics: list[str]
    data: str
    n_train: int
    verify: str | None = None
    seconds: float = 0.0
    skipped: list[dict] = field(default_factory=list)

    def best(self, metric: str | None = None) -> str:
        metric = metric or self.metrics[0]
        return next(r.source for r in self.rows if r.metric == metric)

    def public(self) -> list[dict]:
        return [r.public(self.verify is not None) for r in self.rows]

    def to_dict(self) -> dict:
        """What rank.json and config.yaml's rank section hold."""
        return {"format": "tlearn-rank", "data": self.data, "n_train": self.n_train, "metrics": self.metrics,
                "verify": self.verify, "winner": self.best(), "seconds": round(self.seconds, 3),
                "table": [{k: (round(v, 6) if isinstance(v, float) else v) for k, v in asdict(r).items()}
                          for r in self.rows],
                "skipped": self.skipped}


def parse_metrics(text: str) -> list[str]:
    names = list(METRICS) if text == ALL else [m.strip() for m in text.split(",") if m.strip()]
    unknown = [m for m in names if m not in METRICS]
    if unknown or not names:
        raise TlearnError(f"unknown metric {', '.join(unknown) or repr(text)}; choose from "
                          f"{', '.join(METRICS)} or {ALL}.")
    return names


def _sort_key(row: RankRow) -> tuple:
    return (row.metric, math.isnan(row.score), -row.score if not math.isnan(row.score) else 0.0)


def rank_sources(data: str | Path | DataSplits, sources: list[str], metrics: list[str], *,
                 verify: str | None = None, seed: int = _R.seed, val_fraction: float = _R.val_fraction,
                 batch_size: int = _R.batch_size, precision: str = _R.precision, device: str = _R.device,
                 cache_dir: str | Path | None = None, num_workers: int | None = None, progress: bool = True,
                 image_size: int | None = _R.image_size) -> Ranking:
    """Score each source on the train split with each metric; rows best first per metric.

    data: a dataset (any accepted layout) or DataSplits already loaded; only train is scored, val only for
    verify="probe" (the linear probe's val accuracy, the ground truth a ranking should predict).
    """
    if verify not in (None, *VERIFY):
        raise TlearnError(f"--verify {verify!r}: choose {', '.join(VERIFY)}.")
    start = time.perf_counter()
    splits = data if isinstance(data, DataSplits) else load_splits(data, val_fraction, seed)
    refuse_multilabel(splits, "tlearn rank")
    torch_device, precision, cache = settle_runtime(device, precision, str(cache_dir) if cache_dir else None)
    options = dict(precision=precision, device=torch_device, batch_size=batch_size, cache_dir=cache,
                   num_workers=num_workers, progress=progress)
    rows: list[RankRow] = []
    skipped: dict[str, dict] = {}
    n_train = 0
    for name in sources:
        t0 = time.perf_counter()
        source = load_source(name, image_size)
        fs = extract_features(source.backbone, splits.train, source.info.data_config,
                              desc=f"{describe(name)} train features", **options)
        n_train = len(fs.samples)
        for s in fs.skipped:
            skipped[s.path] = s.to_dict()
        if len(np.unique(fs.labels)) < 2:
            raise DataError(f"{splits.root}: fewer than 2 classes with readable training images; nothing to rank.")
        feature_seconds = time.perf_counter() - t0
        probs = None
        if any(m in NEEDS_SOURCE_OUTPUTS for m in metrics):
            probs = source_probabilities(source, fs.features)
            feature_seconds = time.perf_counter() - t0
        probe_accuracy = probe_seconds = None
        if verify == "probe":
            probe_accuracy, probe_seconds = _probe_accuracy(source, fs, splits, seed, options)
        for metric in metrics:
            t1 = time.perf_counter()
            inputs = probs if metric in NEEDS_SOURCE_OUTPUTS else fs.features
            score = float(METRICS[metric](inputs, fs.labels))
            metric_seconds = time.perf_counter() - t1
            rows.append(RankRow(
                source=name, metric=metric, score=score, seconds=feature_seconds + metric_seconds,
                probe_accuracy=probe_accuracy, kind=source.kind, input_size=source.info.data_config.input_size,
                feature_seconds=feature_seconds, metric_seconds=metric_seconds, features_from_cache=fs.from_cache,
                probe_seconds=probe_seconds))
            log.info("rank: %s %s %.4f (%.1fs, %d/%d features from cache)%s", describe(name), metric, score,
                     feature_seconds + metric_seconds, fs.from_cache, len(fs.samples),
                     "" if probe_accuracy is None else f"; probe val accuracy {probe_accuracy:.4f}")
        del source, fs, probs
        gc.collect()
    rows.sort(key=lambda r: (metrics.index(r.metric), *_sort_key(r)[1:]))
    return Ranking(rows=rows, metrics=list(metrics), data=str(splits.root), n_train=n_train, verify=verify,
                   seconds=time.perf_counter() - start, skipped=list(skipped.values()))


def fill_rank_features(splits: DataSplits, sources: list[str], *, verify: str | None = None,
                       batch_size: int = _R.batch_size, precision: str = _R.precision, device: str = _R.device,
                       cache_dir: str | Path | None = None, image_size: int | None = _R.image_size,
                       num_workers: int | None = None, progress: bool = True) -> bool:
    """Under torchrun, the features rank_sources will read (each source's train, and val with verify) extracted
    over all processes into rank 0's cache, one source at a time; whether this process goes on to rank (rank 0,
    or a single process)."""
    env = dist_env()
    if not env.enabled:
        return True
    refuse_multilabel(splits, "tlearn rank")  # before any work, as rank_sources would
    cache = Path(cache_dir).expanduser() if cache_dir else None
    for name in sources:
        source = load_source(name, image_size)
        jobs = [Extraction(source.backbone, splits.train, source.info.data_config)]
        if verify == "probe" and splits.val:
            jobs.append(Extraction(source.backbone, splits.val, source.info.data_config))
        fill_cache(jobs, precision=precision, device=device, batch_size=batch_size, cache_dir=cache,
                   num_workers=num_workers, progress=progress)
        del source
        gc.collect()
    return env.is_main


def _probe_accuracy(source, train_fs, splits: DataSplits, seed: int, options: dict) -> tuple[float, float]:
    """val accuracy of the default linear probe on this source's features (what `tlearn fit` would train)."""
    from ..strategies.linear_probe import LinearProbe

    t0 = time.perf_counter()
    if not splits.val:
        raise TlearnError(f"{splits.root} has no val images; --verify probe needs a val split.")
    val = extract_features(source.backbone, splits.val, source.info.data_config,
                           desc=f"{describe(source.name)} val features", **options)
    probe = LinearProbe(seed=seed).fit(train_fs.features, train_fs.labels, len(splits.classes))
    accuracy = float((probe.predict(val.features) == val.labels).mean())
    return accuracy, time.perf_counter() - t0


def format_table(ranking: Ranking) -> str:
    """A plain-text table for the terminal, best first per metric."""
    verified = ranking.verify is not None
    header = ["#", "source", "metric", "score", "seconds"] + (["probe val acc"] if verified else [])
    body, place, last = [], 0, None
    for r in ranking.rows:
        place = 1 if r.metric != last else place + 1
        last = r.metric
        body.append([str(place), describe(r.source), r.metric, f"{r.score:.4f}", f"{r.seconds:.1f}"]
                    + ([f"{r.probe_accuracy:.4f}" if r.probe_accuracy is not None else "–"] if verified else []))
    widths = [max(len(x) for x in col) for col in zip(header, *body)]
    lines = ["  ".join(x.ljust(w) if i in (1, 2) else x.rjust(w) for i, (x, w) in enumerate(zip(line, widths)))
             for line in [header] + body]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
