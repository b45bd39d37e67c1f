"""What a deployed model costs: parameters, size on disk and CPU latency per image.

Latency is measured the way a deployment sees it: fp32 on the CPU, eval mode, no autograd, a batch of
random images at each model's own input size. Each figure is the median of repeated timed runs after
warm-up, divided by the batch size (ms per image). Models being compared are timed in interleaved
rounds, so a load change on a shared machine hits all of them alike. The default is one thread: the
case of a small board, and far less noisy than several threads on a busy machine.
"""
from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Iterator

import torch
from torch import nn

DEFAULT_THREADS = 1


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def state_megabytes(model: nn.Module) -> float:
    """Size of the fp32 state (parameters + buffers) in MB (10^6 bytes): about what model.safetensors holds."""
    return sum(t.numel() * t.element_size() for t in model.state_dict().values()) / 1e6


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run with n intra-op threads (None: leave torch's setting), restoring it afterwards."""
    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(before)


@torch.inference_mode()
def compare_latency(models: dict[str, tuple[nn.Module, int]], batch_size: int = 1, repeats: int = 20,
                    warmup: int = 3, threads: int | None = DEFAULT_THREADS) -> dict[str, float]:
    """{name: median ms per image} for models given as {name: (model, input_size)}, timed in interleaved rounds."""
    if repeats < 1:
        raise ValueError("repeats must be at least 1")
    prepared = {}
    for name, (model, size) in models.items():
        model = model.eval().cpu().float().to(memory_format=torch.channels_last)
        x = torch.randn(batch_size, 3, size, size).contiguous(memory_format=torch.channels_last)
        prepared[name] = (model, x)
    times: dict[str, list[float]] = {name: [] for name in prepared}
    with torch_threads(threads):
        for _ in range(warmup):
            for model, x in prepared.values():
                model(x)
        for _ in range(repeats):
            for name, (model, x) in prepared.items():
                start = time.perf_counter()
                model(x)
                times[name].append(time.perf_counter() - start)
    return {name: 1000.0 * statistics.median(t) / batch_size for name, t in times.items()}


def compare_costs(models: dict[str, tuple[nn.Module, int]], repeats: int = 20, batch32_repeats: int = 5,
                  threads: int | None = DEFAULT_THREADS) -> dict[str, dict]:
    """{name: {params, mb, ms_batch1, ms_batch32}} for models given as {name: (model, input_size)}."""
    b1 = compare_latency(models, 1, repeats, warmup=3, threads=threads)
    b32 = compare_latency(models, 32, batch32_repeats, warmup=1, threads=threads)
    return {
        name: {"params": parameter_count(model), "mb": round(state_megabytes(model), 3),
               "ms_batch1": round(b1[name], 4), "ms_batch32": round(b32[name], 4)}
        for name, (model, _) in models.items()
    }
