"""Atomic per-epoch checkpoints without pickle: weights and optimizer tensors in safetensors, the rest JSON.

CKPT/
  last.json              {"dir": "epoch-0007"}: replaced atomically once that directory is complete
  epoch-0007/model.safetensors, optimizer.safetensors, state.json (and ema.safetensors with --ema)
  best.safetensors       weights of the best epoch on val
No RNG state is stored: every random choice is derived from (seed, epoch, sample), so resuming at an epoch
boundary replays exactly what an uninterrupted run would have done.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from ..errors import TlearnError

CHECKPOINT_FORMAT = 1


def _state_tensors(module_state: dict) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().contiguous() for k, v in module_state.items()}


def save_weights(state: dict, path: Path) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.close(fd)
    save_file(_state_tensors(state), tmp)
    os.replace(tmp, path)


def optimizer_to_files(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    """Split optimizer.state_dict() into tensors (safetensors) and plain values (JSON)."""
    sd = optimizer.state_dict()
    tensors, plain = {}, {}
    for pid, st in sd["state"].items():
        for name, value in st.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{pid}.{name}"] = value.detach().cpu().contiguous()
            else:
                plain[f"{pid}.{name}"] = value
    return tensors, {"param_groups": sd["param_groups"], "plain": plain}


def optimizer_from_files(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    state: dict[int, dict] = {}
    for key, value in list(tensors.items()) + list(meta["plain"].items()):
        pid, name = key.split(".", 1)
        state.setdefault(int(pid), {})[name] = value
    return {"state": state, "param_groups": meta["param_groups"]}


def save_checkpoint(folder: Path, epoch: int, model_state: dict, optimizer: torch.optim.Optimizer,
                    state: dict, keep: int = 1, extra_weights: dict[str, dict] | None = None) -> Path:
    """Write epoch-NNNN/ completely, then point last.json at it; older epoch dirs beyond keep are removed.

    extra_weights: more state dicts to keep with the epoch (NAME.safetensors), e.g. averaged weights."""
    folder.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder, prefix=".tmp-"))
    save_file(_state_tensors(model_state), tmp / "model.safetensors")
    for name, weights in (extra_weights or {}).items():
        save_file(_state_tensors(weights), tmp / f"{name}.safetensors")
    opt_tensors, opt_meta = optimizer_to_files(optimizer)
    save_file(opt_tensors, tmp / "optimizer.safetensors")
    (tmp / "state.json").write_text(json.dumps({**state, "optimizer": opt_meta, "format": CHECKPOINT_FORMAT},
                                               default=float))
    final = folder / f"epoch-{epoch:04d}"
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    fd, pointer = tempfile.mkstemp(dir=folder, prefix=".last.")
    with os.fdopen(fd, "w") as f:
        json.dump({"dir": final.name, "epoch": epoch}, f)
    os.replace(pointer, folder / "last.json")
    epochs = sorted(p for p in folder.glob("epoch-*") if p.is_dir())
    for old in epochs[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    for stale in folder.glob(".tmp-*"):
        if stale != tmp:
            shutil.rmtree(stale, ignore_errors=True)
    return final


def load_checkpoint(folder: Path) -> tuple[dict, dict, dict] | None:
    """(model state, optimizer state_dict, loop state) of the last complete checkpoint, or None; the loop
    state's "extra_weights" holds the extra state dicts saved with it."""
    pointer = folder / "last.json"
    if not pointer.is_file():
        return None
    target = folder / json.loads(pointer.read_text())["dir"]
    try:
        state = json.loads((target / "state.json").read_text())
        model_state = load_file(str(target / "model.safetensors"))
        optimizer = optimizer_from_files(load_file(str(target / "optimizer.safetensors")), state.pop("optimizer"))
        state["extra_weights"] = {p.stem: load_file(str(p)) for p in target.glob("*.safetensors")
                                  if p.stem not in ("model", "optimizer")}
    except (OSError, ValueError, KeyError) as exc:
        raise TlearnError(f"checkpoint {target} is unreadable ({exc}); delete {folder} to start over.") from None
    return model_state, optimizer, state
