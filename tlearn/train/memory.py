"""Training memory: micro-batches sized to a memory budget, and activation checkpointing over the backbone's stages.

The activations that backward needs dominate fine-tuning's memory (tens of MB per 224 px image for an
EfficientNet) and grow with the images in one forward pass. A batch can be taken in micro-batches whose
gradients add up to the batch's (same optimizer steps, same schedule); checkpointing a stage instead keeps only
its input and recomputes its inside during backward.
"""
from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import types
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from ..device import autocast

log = logging.getLogger("tlearn")

STAGE_CONTAINERS = ("blocks", "stages", "layers", "features")  # timm and torchvision names of the stage list


def stage_container(backbone: nn.Module) -> nn.Sequential | None:
    """The backbone's sequence of stages (stem first), or None when it has none checkpointing knows."""
    for name in STAGE_CONTAINERS:
        found = getattr(backbone, name, None)
        if isinstance(found, nn.Sequential) and len(found) > 1:
            return found
    return None


def _checkpointed_forward(self: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    for k, stage in enumerate(self):
        if k < self._tlearn_checkpointed and torch.is_grad_enabled() and self.training:
            x = checkpoint(stage, x, use_reentrant=False)
        else:
            x = stage(x)
    return x


def checkpoint_stages(model: nn.Module, first: int) -> int:
    """Recompute the first `first` stages of model.backbone in backward instead of keeping their activations.

    The weights and state_dict keys are unchanged (the container's forward is replaced on the instance).
    Returns how many stages are checkpointed (0 when the backbone has no stage list)."""
    container = stage_container(getattr(model, "backbone", model))
    if container is None or first <= 0:
        return 0
    container._tlearn_checkpointed = min(first, len(container))
    container.forward = types.MethodType(_checkpointed_forward, container)
    return container._tlearn_checkpointed


def uncheckpoint(model: nn.Module) -> None:
    container = stage_container(getattr(model, "backbone", model))
    if container is not None and "forward" in vars(container):
        del container.forward
        del container._tlearn_checkpointed


@contextlib.contextmanager
def checkpointed(model: nn.Module, first: int) -> Iterator[int]:
    """checkpoint_stages for the duration of a with block (the model leaves it as it came)."""
    try:
        yield checkpoint_stages(model, first)
    finally:
        uncheckpoint(model)


def micro_slices(n: int, micro: int) -> list[slice]:
    """n images as the fewest parts of at most `micro`, their sizes differing by at most one."""
    parts = max(1, -(-n // max(micro, 1)))
    bounds = [round(i * n / parts) for i in range(parts + 1)]
    return [slice(a, b) for a, b in zip(bounds, bounds[1:])]


def saved_bytes_per_image(model: nn.Module, size: int, precision: str = "fp32",
                          device: torch.device | str = "cpu") -> float:
    """Bytes autograd keeps for backward per image of `size` px with every parameter trainable (the most a
    phase can keep): the difference between forwards of 2 and 1 images, so the weights do not count."""
    device = torch.device(device)
    flags = [(p, p.requires_grad) for p in model.parameters()]
    modes = [(m, m.training) for m in model.modules()]
    model.eval()  # BatchNorm keeps its running statistics; it saves the same input for backward either way
    for p, _ in flags:
        p.requires_grad_(True)

    def saved(n: int) -> int:
        seen: dict[tuple[int, int], int] = {}

        def pack(t: torch.Tensor):
            storage = t.untyped_storage()
            seen[(storage.data_ptr(), t.device.index or 0)] = storage.nbytes()
            return t

        x = torch.zeros(n, 3, size, size, device=device).contiguous(memory_format=torch.channels_last)
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), autocast(precision, device):
            out = model(x)
        del out
        return sum(seen.values())

    try:
        with torch.random.fork_rng(devices=[]):
            return float(max(saved(2) - saved(1), 0))
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)
        for m, mode in modes:
            m.training = mode


def resident_bytes() -> float:
    """This process's resident memory now (Linux /proc; 0 elsewhere)."""
    try:
        for line in Path(f"/proc/{os.getpid()}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return float(line.split()[1]) * 1024
    except OSError:
        pass
    return 0.0


# Measured with benchmarks/step_memory.py (EfficientNet-Lite0, 224 px, CPU): a step adds about 1.05x the bytes
# autograd keeps per image, plus gradients, momentum and the L2-SP/EMA copies of the weights.
STEP_OVERHEAD = 1.1
STEP_FIXED_PER_WEIGHT = 5  # weight-sized buffers a step may hold: gradients, momentum, L2-SP start, EMA, a spare
# Default on the CPU with BatchNorm frozen: the images of one pass keep at most this much for backward (8 images
# of EfficientNet-Lite0 at 224 px): no slower than the whole batch there (benchmarks/step_memory.py), while small
# images still go in one pass (per-pass overhead)
CPU_ACTIVATION_BYTES = 0.75e9


def plan_micro_batch(batch: int, per_image: float, base: float, budget: float, workers: int) -> int:
    """The most images per forward/backward pass (at most `batch`) whose step fits `budget` bytes next to
    `base` (the process now) and `workers` data workers (each counted as large as the process: they are
    forked from it). 0 when not even one image fits."""
    room = budget - base * (1 + workers)
    return int(min(batch, max(room, 0) // max(per_image * STEP_OVERHEAD, 1.0)))


def _batchnorm_trains(model: nn.Module, options) -> bool:
    return not options.freeze_bn and any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


def micro_batch(model: nn.Module, options, size: int, precision: str, device: torch.device, workers: int) -> int:
    """Images per forward/backward pass: options.micro_batch; or what options.memory_budget allows (logged); or,
    by default on the CPU with BatchNorm frozen, as many as keep CPU_ACTIVATION_BYTES (the same gradient, a
    fraction of the memory); else the whole batch."""
    batch = options.batch_size
    if options.micro_batch:
        return min(options.micro_batch, batch)
    trains_bn = _batchnorm_trains(model, options)
    if not options.memory_budget:
        if device.type != "cpu" or trains_bn:
            return batch
        per_image = saved_bytes_per_image(model, size, precision, device) * STEP_OVERHEAD
        return max(1, min(batch, int(CPU_ACTIVATION_BYTES // max(per_image, 1.0))))
    per_image = saved_bytes_per_image(model, size, precision, device)
    base = resident_bytes() if device.type == "cpu" else 0.0
    base += STEP_FIXED_PER_WEIGHT * sum(p.numel() * p.element_size() for p in model.parameters())
    planned = plan_micro_batch(batch, per_image, base, options.memory_budget * 1e9, workers)
    if planned < 1:
        log.warning("--memory-budget %.1f GB: the process holds about %.1f GB (and %d data worker(s) like it) and "
                    "one %d px image needs about %.2f GB more to train; training one image at a time, over budget. "
                    "Give more memory, --num-workers 0, or a smaller --image-size.", options.memory_budget,
                    base / 1e9, workers, size, per_image * STEP_OVERHEAD / 1e9)
        return 1
    note = (" (BatchNorm trains: its statistics come from each micro-batch)" if planned < batch and trains_bn
            else "")
    log.info("--memory-budget %.1f GB: %d image(s) per forward/backward pass of each batch of %d%s",
             options.memory_budget, planned, batch, note)
    return planned


def release_freed_memory() -> None:
    """Hand the heap pages freed since the last step back to the OS (glibc keeps them otherwise): the process's
    resident memory drops to what it uses, and data workers forked later do not map them."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass
