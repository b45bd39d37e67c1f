"""Device and numeric precision: explicit, recorded, never hidden global state."""
from __future__ import annotations

import contextlib
from pathlib import Path

import torch

from .files import default_cache_dir


def pick_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def bf16_supported(device: torch.device) -> bool:
    """bf16 pays off on CPUs with AVX-512 bf16/AMX and on recent GPUs; elsewhere it is emulated and slow."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def resolve_precision(precision: str, device: torch.device) -> str:
    if precision not in ("auto", "bf16", "fp32"):
        raise ValueError(f"precision must be auto, bf16 or fp32, not {precision!r}")
    if precision == "auto":
        return "bf16" if bf16_supported(device) else "fp32"
    return precision


def autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


def settle_runtime(device: str, precision: str, cache_dir: str | Path | None) -> tuple[torch.device, str, Path]:
    """(torch device, resolved precision, cache folder): what every command that computes settles first."""
    torch_device = pick_device(device)
    cache = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
    return torch_device, resolve_precision(precision, torch_device), cache
