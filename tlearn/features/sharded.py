"""Feature extraction split over torchrun processes, into rank 0's feature cache.

Under torchrun every process calls `fill_cache` with the same jobs. Rank 0 looks the images up in its cache and
broadcasts the ones still missing; they are cut into batches exactly as one process would cut them, and process
r forwards batches r, r + world, ... Each round of batches is gathered to rank 0, which writes it into the cache.
Then rank 0 runs the single-process code, which finds every feature in the cache (so the numbers equal a
single-process run's and a later single-process run reuses them), while the other processes return and exit.
Only rank 0 reads or writes the cache: the other machines need the images at the same paths, not the cache.
"""
from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from ..data.layout import Sample
from ..data.transforms import DataConfig
from ..device import resolve_precision
from ..hashing import file_digest
from ..train.distributed import (DistEnv, dist_env, init_distributed, object_group, training_device,
                                 training_threads)
from .cache import FeatureCache, default_cache_dir, module_fingerprint
from .extract import forward_batches, image_loader, prepare_for_inference

log = logging.getLogger("tlearn")


@dataclass
class Extraction:
    """One extract_features call that will follow: its batches are cut from samples alone, as that call cuts them."""

    backbone: nn.Module
    samples: Sequence[Sample]
    data_config: DataConfig


@dataclass(frozen=True)
class Filled:
    """What fill_cache did: is_main tells the caller to go on (rank 0, or a single process) or to stop."""

    env: DistEnv
    extracted: int = 0  # features written into the cache (on rank 0)

    @property
    def is_main(self) -> bool:
        return self.env.is_main


def fill_cache(jobs: Sequence[Extraction], *, precision: str = "auto", device: str = "auto", batch_size: int = 64,
               cache_dir: str | Path | None = None, num_workers: int | None = None, progress: bool = True) -> Filled:
    """Under torchrun, extract the jobs' uncached features over all processes into rank 0's cache; without it,
    nothing. Every process must call this with the same jobs, after which the caller goes on with the
    single-process code on rank 0 (which finds the features in the cache) and stops on the others."""
    env = dist_env()
    if not env.enabled:
        return Filled(env)
    requested = str(device)
    torch_device = training_device("auto" if requested in ("auto", "cuda") else requested, env)  # a GPU each
    init_distributed(torch_device)
    group = object_group()
    previous = torch.get_num_threads()
    torch.set_num_threads(training_threads(env)[0])  # the local processes share the cores, as in training
    try:
        extracted = sum(_fill_one(job, env, group, torch_device, precision, batch_size, cache_dir, num_workers,
                                  progress) for job in jobs)
    finally:
        torch.set_num_threads(previous)
    return Filled(env, extracted)


def _fill_one(job: Extraction, env: DistEnv, group, device: torch.device, precision: str, batch_size: int,
              cache_dir, num_workers, progress: bool) -> int:
    """Fill the cache with one job's missing features; how many rank 0 wrote."""
    start = time.perf_counter()
    cache = None
    digests: list[str] = []  # rank 0: the file hash of each path to extract
    plan: list = [None, None]
    if env.is_main:
        resolved = resolve_precision(precision, device)  # rank 0's precision names the cache, so it decides
        cache = FeatureCache(cache_dir or default_cache_dir(), {"backbone": module_fingerprint(job.backbone),
                                                                "data": job.data_config.cache_dict(),
                                                                "precision": resolved})
        todo = _missing(job.samples, cache)
        digests = [d for _, d in todo]
        plan = [resolved, [str(job.samples[i].path) for i, _ in todo]]
    dist.broadcast_object_list(plan, src=0, group=group)
    resolved, paths = plan
    batches = math.ceil(len(paths) / batch_size)
    mine = [k for k in range(env.rank, batches, env.world)]

    def position(local: int) -> int:
        """Position in paths of the local-th image this process forwards."""
        return mine[local // batch_size] * batch_size + local % batch_size

    written = 0

    def share(index: np.ndarray | None, out: np.ndarray | None) -> None:
        nonlocal written
        payload = None if out is None else [(position(int(j)), vec) for j, vec in zip(index, out)]
        gathered = [None] * env.world if env.is_main else None
        dist.gather_object(payload, gathered, dst=0, group=group)
        if env.is_main:
            rows = [(digests[p], vec) for part in gathered if part for p, vec in part]
            if rows:
                cache.put_many(rows)
                written += len(rows)

    if mine:
        my_paths = [Path(paths[p]) for k in mine for p in range(k * batch_size, min((k + 1) * batch_size, len(paths)))]
        module = prepare_for_inference(job.backbone, device)
        loader = image_loader(my_paths, job.data_config, batch_size, num_workers)
        forward_batches(module, loader, device, resolved, lambda index, out, failed: share(index, out),
                        progress and env.is_main, f"features (rank {env.rank})")
    for _ in range(math.ceil(batches / env.world) - len(mine)):  # the last round: some processes have no batch
        share(None, None)
    if cache is not None:
        cache.close()
    if env.is_main and paths:
        log.info("features of %d image(s) over %d processes in %.1fs", written, env.world, time.perf_counter() - start)
    return written


def _missing(samples: Sequence[Sample], cache: FeatureCache) -> list[tuple[int, str]]:
    """(index, file hash) of the samples whose features are not in the cache, in order, as extract_features
    finds them (files that cannot be read are left to it, which reports them)."""
    digests: list[tuple[int, str]] = []
    for i, s in enumerate(samples):
        try:
            digests.append((i, file_digest(s.path)))
        except OSError:
            continue
    found = cache.get_many([d for _, d in digests])
    return [(i, d) for i, d in digests if d not in found]
