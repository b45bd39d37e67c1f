"""Atomic per-epoch checkpoints without pickle: weights and optimizer tensors in safetensors, the rest JSON.

CKPT/
  last.json              {"dir": "epoch-0007", "epoch": 7}: replaced atomically once that directory is complete
  epoch-0007/model.safetensors, optimizer.safetensors, state.json (and ema.safetensors with --ema),
             tlearn-checkpoint (the marker: only folders that carry it are ever deleted)
  best.safetensors       weights of the best epoch on val
Epoch folders are ordered by their number (epoch-10000 follows epoch-9999), never by name.
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
MARKER = "tlearn-checkpoint"
POINTER, BEST = "last.json", "best.safetensors"


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
    (tmp / MARKER).write_text(json.dumps({"epoch": epoch, "format": CHECKPOINT_FORMAT}))
    final = folder / f"epoch-{epoch:04d}"
    if final.exists():
        if not _is_checkpoint(final):
            shutil.rmtree(tmp, ignore_errors=True)
            raise TlearnError(f"{final} exists and is not a tlearn checkpoint; move it away (it is not deleted).")
        shutil.rmtree(final)
    os.replace(tmp, final)
    fd, pointer = tempfile.mkstemp(dir=folder, prefix=".last.")
    with os.fdopen(fd, "w") as f:
        json.dump({"dir": final.name, "epoch": epoch}, f)
    os.replace(pointer, folder / POINTER)
    for number, old in checkpoint_dirs(folder)[:-keep]:
        if number != epoch:
            shutil.rmtree(old, ignore_errors=True)
    for stale in folder.glob(".tmp-*"):
        if stale != tmp and stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)
    return final


def checkpoint_dirs(folder: Path) -> list[tuple[int, Path]]:
    """(epoch, folder) of the epoch folders tlearn wrote (those with its marker), by epoch number."""
    found = []
    for path in folder.glob("epoch-*"):
        number = path.name.removeprefix("epoch-")
        if number.isdigit() and _is_checkpoint(path):
            found.append((int(number), path))
    return sorted(found)


def _is_checkpoint(path: Path) -> bool:
    """Carries tlearn's marker (an epoch folder without it is not tlearn's, and is never read or removed)."""
    return (path / MARKER).is_file()


def clear_checkpoints(folder: Path) -> list[Path]:
    """Remove a previous run's checkpoints: tlearn's epoch folders, the pointer and the best weights; anything
    else in folder (a user's files) is kept, and folder too when it is not empty then. Returns the epoch-*
    folders kept because tlearn did not write them (a new run could not write its own there)."""
    if not folder.is_dir():
        return []
    for _, path in checkpoint_dirs(folder):
        shutil.rmtree(path)
    for stale in folder.glob(".tmp-*"):
        if stale.is_dir() and (stale / "state.json").is_file():
            shutil.rmtree(stale, ignore_errors=True)
    (folder / POINTER).unlink(missing_ok=True)
    (folder / BEST).unlink(missing_ok=True)
    try:
        folder.rmdir()
    except OSError:
        pass
    return sorted(p for p in folder.glob("epoch-*") if p.is_dir())


def load_checkpoint(folder: Path) -> tuple[dict, dict, dict] | None:
    """(model state, optimizer state_dict, loop state) of the last complete checkpoint, or None; the loop
    state's "extra_weights" holds the extra state dicts saved with it."""
    pointer = folder / POINTER
    if not pointer.is_file():
        return None
    try:
        target = folder / json.loads(pointer.read_text())["dir"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise TlearnError(f"checkpoint pointer {pointer} is unreadable ({exc}); rerun without --resume.") from None
    if not _is_checkpoint(target):
        raise TlearnError(f"checkpoint {target} has no {MARKER} file (not written by this tlearn); rerun without "
                          "--resume to start over.")
    try:
        state = json.loads((target / "state.json").read_text())
        model_state = load_file(str(target / "model.safetensors"))
        optimizer = optimizer_from_files(load_file(str(target / "optimizer.safetensors")), state.pop("optimizer"))
        state["extra_weights"] = {p.stem: load_file(str(p)) for p in target.glob("*.safetensors")
                                  if p.stem not in ("model", "optimizer")}
    except (OSError, ValueError, KeyError) as exc:
        raise TlearnError(f"checkpoint {target} is unreadable ({exc}); rerun without --resume to start over.") \
            from None
    return model_state, optimizer, state
