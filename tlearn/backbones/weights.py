"""Resolve pretrained weights offline first, verify them, and load them without unpickling.

Order: an explicit file, the torch hub cache (TORCH_HOME), the Hugging Face cache, a PyPI package that
ships the file, and last a download where a network exists. The resolved file's sha256 is recorded.
"""
from __future__ import annotations

import importlib.util
import os
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import WeightsError
from ..hashing import sha256_file


@dataclass(frozen=True)
class WeightsSource:
    """Where a backbone's pretrained weights can come from, and how to check them."""

    filename: str  # the file name in the torch hub cache
    url: str | None = None
    sha256: str | None = None  # full checksum, when known
    package: str | None = None  # "module/relative/path" of a PyPI package that ships the file
    hf_hub_id: str | None = None  # Hugging Face repo with a model.safetensors

    @property
    def hash_prefix(self) -> str | None:
        """torchvision/timm convention: name-<first hex digits of sha256>.pth"""
        m = re.search(r"-([0-9a-f]{8,})\.(pth|pt|bin|safetensors)$", self.filename)
        return m.group(1) if m else None


@dataclass(frozen=True)
class ResolvedWeights:
    path: Path
    sha256: str
    origin: str  # explicit | torch-hub-cache | hf-cache | package | download


def torch_hub_checkpoints() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints"


def _package_file(spec: str) -> Path | None:
    module, _, rel = spec.partition("/")
    found = importlib.util.find_spec(module)
    if found is None or not found.submodule_search_locations:
        return None
    path = Path(list(found.submodule_search_locations)[0]) / rel
    return path if path.is_file() else None


def _hf_cached(hf_hub_id: str) -> Path | None:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - huggingface_hub comes with timm
        return None
    for filename in ("model.safetensors", "pytorch_model.bin"):
        found = try_to_load_from_cache(hf_hub_id, filename)
        if isinstance(found, str) and os.path.isfile(found):
            return Path(found)
    return None


def verify(path: Path, source: WeightsSource | None, expected_sha256: str | None = None) -> str:
    """Return the file's sha256; raise if it contradicts a known checksum."""
    digest = sha256_file(path)
    expected = expected_sha256 or (source.sha256 if source else None)
    if expected and digest != expected.lower():
        raise WeightsError(
            f"checksum mismatch for {path}: sha256 is {digest}, expected {expected}. "
            "The file is corrupt or not these weights; delete it and fetch it again."
        )
    if not expected and source and source.hash_prefix and Path(path).name == source.filename:
        if not digest.startswith(source.hash_prefix):
            raise WeightsError(
                f"checksum mismatch for {path}: sha256 {digest[:12]}... does not start with "
                f"{source.hash_prefix} (from its file name). Delete it and fetch it again."
            )
    # Hugging Face stores LFS files under their own sha256.
    if path.parent.name == "snapshots" or "snapshots" in path.parts:
        blob = Path(os.path.realpath(path)).name
        if re.fullmatch(r"[0-9a-f]{64}", blob) and blob != digest:
            raise WeightsError(f"checksum mismatch for {path}: blob {blob} has sha256 {digest}.")
    return digest


def resolve(name: str, source: WeightsSource | None, explicit: str | Path | None = None,
            expected_sha256: str | None = None, allow_download: bool = True) -> ResolvedWeights:
    """Find weights for backbone `name`, offline first; raise WeightsError saying where to put them."""
    if explicit is not None:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise WeightsError(f"weights file {path} does not exist.")
        return ResolvedWeights(path, verify(path, source, expected_sha256), "explicit")
    if source is None:
        raise WeightsError(f"backbone {name} has no known pretrained weights; pass --weights PATH or none.")
    candidates: list[tuple[Path | None, str]] = [
        (torch_hub_checkpoints() / source.filename, "torch-hub-cache"),
        (_hf_cached(source.hf_hub_id) if source.hf_hub_id else None, "hf-cache"),
        (_package_file(source.package) if source.package else None, "package"),
    ]
    for path, origin in candidates:
        if path is not None and path.is_file():
            return ResolvedWeights(path, verify(path, source, expected_sha256), origin)
    if allow_download and source.url and os.environ.get("TLEARN_OFFLINE") != "1":
        target = torch_hub_checkpoints() / source.filename
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            torch.hub.download_url_to_file(source.url, str(target), hash_prefix=source.hash_prefix, progress=True)
            return ResolvedWeights(target, verify(target, source, expected_sha256), "download")
        except Exception as exc:  # no network here is the normal case; say what to do instead
            target.unlink(missing_ok=True)
            reason = f"download failed ({type(exc).__name__}: {exc})"
    else:
        reason = "no download attempted (offline)"
    where = [f"  - put {source.filename} in {torch_hub_checkpoints()}"]
    if source.url:
        where[0] += f" (from {source.url})"
    if source.hf_hub_id:
        where.append(f"  - or cache the Hugging Face repo {source.hf_hub_id}")
    if source.package:
        where.append(f"  - or pip install the package that ships it ({source.package.split('/')[0]})")
    where.append("  - or pass --weights PATH (a .safetensors or .pth state dict), or --weights none for random init")
    raise WeightsError(f"no pretrained weights found for {name}; {reason}. To fix:\n" + "\n".join(where))


def load_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Load a state dict from .safetensors or a tensor-only .pth, never unpickling arbitrary objects."""
    path = Path(path)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise WeightsError(f"cannot load weights from {path}: {exc}") from exc
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"{path} is not a state dict of tensors.")
    return {k.removeprefix("module."): v for k, v in state.items()}
