"""Distributed data parallel under torchrun: one process per device, rank 0 writes the run directory."""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel


@dataclass(frozen=True)
class DistEnv:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world > 1


def dist_env() -> DistEnv:
    """The torchrun environment (RANK, WORLD_SIZE, LOCAL_RANK); a single process when absent."""
    return DistEnv(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
                   int(os.environ.get("LOCAL_RANK", 0)))


def init_distributed(device: torch.device) -> DistEnv:
    """Join the process group when launched by torchrun (gloo on CPU, nccl on CUDA); idempotent."""
    env = dist_env()
    if env.enabled and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return env


def training_device(requested: str, env: DistEnv) -> torch.device:
    """auto: this process's GPU (LOCAL_RANK) when CUDA is present, else the CPU."""
    if requested == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", env.local_rank % torch.cuda.device_count())
        return torch.device("cpu")
    return torch.device(requested)


def match_gradient_strides(model: nn.Module) -> nn.Module:
    """Give each parameter whose memory is laid out alike in channels_last and contiguous (1x1 and depthwise conv
    weights) the contiguous strides its gradients come with: DDP builds its gradient buckets from the parameters'
    strides and warns "Grad strides do not match bucket view strides" at a nominal difference (pytorch#47163)."""
    with torch.no_grad():
        for p in model.parameters():
            if p.is_contiguous() and p.stride() != _contiguous_strides(p.shape):
                p.data = p.data.clone(memory_format=torch.contiguous_format)
    return model


def _contiguous_strides(shape: torch.Size) -> tuple[int, ...]:
    strides, step = [], 1
    for size in reversed(shape):
        strides.append(step)
        step *= max(size, 1)
    return tuple(reversed(strides))


def wrap_ddp(model: nn.Module, device: torch.device) -> DistributedDataParallel:
    """model wrapped for DistributedDataParallel, its parameters' strides matched to their gradients' first."""
    return DistributedDataParallel(match_gradient_strides(model),
                                   device_ids=[device.index] if device.type == "cuda" else None)


def all_sum(values: list[float], env: DistEnv) -> list[float]:
    """Sum numbers over processes (identity without DDP)."""
    if not env.enabled:
        return values
    t = torch.tensor(values, dtype=torch.float64)
    dist.all_reduce(t)
    return t.tolist()


_GLOO: list = []


def object_group():
    """The group that carries pickled objects: the default one under gloo, else a gloo group made once (nccl
    carries only tensors on the GPU)."""
    if dist.get_backend() == "gloo":
        return None
    if not _GLOO:
        _GLOO.append(dist.new_group(backend="gloo"))
    return _GLOO[0]


def from_main(value):
    """rank 0's value in every process (the value itself without torchrun); every process must call this."""
    env = dist_env()
    if not env.enabled:
        return value
    init_distributed(training_device("auto", env))
    box = [value]
    dist.broadcast_object_list(box, src=0, group=object_group())
    return box[0]


def leave() -> None:
    """Leave the process group, if this process joined one."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier(env: DistEnv) -> None:
    if env.enabled and dist.is_initialized():
        dist.barrier()


def training_threads(env: DistEnv, requested: int | None = None) -> tuple[int, str]:
    """CPU threads for this process and why: the cores shared between local processes, or one thread when
    the machine is oversubscribed (load average above twice the core count: other work, not just this
    process's own decoding), where threads that wait for each other at every operator lose more time than
    they gain (docs/results.md#speed-and-memory)."""
    if requested:
        return requested, "requested"
    cores = os.cpu_count() or 1
    local = int(os.environ.get("LOCAL_WORLD_SIZE", env.world)) if env.enabled else 1
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    if load > 2 * cores:
        return 1, f"machine oversubscribed: load {load:.1f} on {cores} cores"
    share = max(1, cores // local)
    return min(share, torch.get_num_threads()) if not env.enabled else share, f"{cores} cores, {local} process(es)"
