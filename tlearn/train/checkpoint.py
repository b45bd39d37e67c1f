"""Atomic per-epoch checkpoints without pickle: weights and optimizer tensors in safetensors, the rest JSON.

CKPT/
  last.json              {"dir": "epoch-0007", "epoch": 7}: replaced atomically once that directory is complete
  epoch-0007/model.safetensors, optimizer.safetensors, state.json (and ema.safetensors with --ema),
             tlearn-checkpoint (the marker: only folders that carry it are ever deleted)
  best.safetensors       weights of the best epoch on val
Epoch folders are ordered by their number (epoch-10000 follows epoch-9999), never by name.
No RNG state is stored: every random choice is derived from (seed, epoch, sample), so resuming at an epoch
boundary replays exactly what an uninterrupted run would have done.

Everything read back is checked before use (load_checkpoint, load_best, restore_optimizer): the pointer names an
epoch folder inside CKPT, state.json has the types this module writes, the weights are safetensors with the
model's names, shapes and kinds of number and finite values, the optimizer state fits the parameters; a bad
file is a TlearnError that names it and says what to do.
"""
from __future__ import annotations

import json
import math
import os
import re
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors.torch import save_file

from ..backbones.tensor_files import check_tensors, non_finite, read_checked, read_tensors
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


RESTART = "rerun without --resume to train from the start, or use a new --out"
_EPOCH_DIR = re.compile(r"epoch-\d+")


def _whole(value, least: int = 0) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= least


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _state_problem(state) -> str | None:
    """What is wrong with a state.json read back (None when it has the types save_checkpoint writes)."""
    if not isinstance(state, dict):
        return "not a JSON object"
    if state.get("format") != CHECKPOINT_FORMAT:
        return f"format {state.get('format')!r}, not {CHECKPOINT_FORMAT}"
    if not _whole(state.get("epoch"), 1):
        return f"epoch {state.get('epoch')!r} is not a whole number from 1"
    history = state.get("history")
    if not isinstance(history, list) or not all(
            isinstance(row, dict) and all(v is None or isinstance(v, str) or _number(v) for v in row.values())
            for row in history):
        return "history is not a list of rows of numbers"
    best = state.get("best")
    if not isinstance(best, dict) or not _whole(best.get("epoch")) or not all(
            _number(best.get(k)) for k in ("val_accuracy", "val_loss")):
        return "best is not {epoch, val_accuracy, val_loss} numbers"
    for key in ("bad_epochs", "ema_steps"):
        if not _whole(state.get(key, 0)):
            return f"{key} {state.get(key)!r} is not a whole number from 0"
    if not isinstance(state.get("settings"), dict):
        return "settings is not a JSON object"
    optimizer = state.get("optimizer")
    if not isinstance(optimizer, dict) or not isinstance(optimizer.get("plain"), dict) or not isinstance(
            optimizer.get("param_groups"), list) or not all(
            isinstance(g, dict) and isinstance(g.get("params"), list) and all(_whole(p) for p in g["params"])
            and all(not _number(v) or math.isfinite(v) for v in g.values())
            for g in optimizer["param_groups"]):
        return "optimizer is not {param_groups: [{params: [...], ...}], plain: {...}}"
    return None


def _target(folder: Path) -> Path:
    """The epoch folder last.json points at: a tlearn checkpoint folder inside FOLDER."""
    pointer = folder / POINTER
    try:
        name = json.loads(pointer.read_text())["dir"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise TlearnError(f"checkpoint pointer {pointer} is unreadable ({exc}); {RESTART}.") from None
    if not isinstance(name, str) or not _EPOCH_DIR.fullmatch(name):
        raise TlearnError(f"checkpoint pointer {pointer} names {name!r}, not an epoch-NNNN folder beside it; the file "
                          f"was edited; {RESTART}.")
    target = folder / name
    if not _is_checkpoint(target):
        raise TlearnError(f"checkpoint {target} has no {MARKER} file (not written by this tlearn); {RESTART}.")
    return target


def load_checkpoint(folder: Path, expected: Mapping[str, torch.Tensor] | None = None
                    ) -> tuple[dict, dict, dict] | None:
    """(model state, optimizer state_dict, loop state) of the last complete checkpoint, or None; the loop
    state's "extra_weights" holds the extra state dicts saved with it.

    expected: the model's state_dict(); the weights (and the extra state dicts) must fit it."""
    if not (folder / POINTER).is_file():
        return None
    target = _target(folder)
    state_file = target / "state.json"
    try:
        state = json.loads(state_file.read_text())
    except (OSError, ValueError) as exc:
        raise TlearnError(f"checkpoint state {state_file} is unreadable ({exc}); {RESTART}.") from None
    problem = _state_problem(state)
    if problem:
        raise TlearnError(f"checkpoint state {state_file} is not usable ({problem}; the file was edited or damaged); "
                          f"{RESTART}.")
    weights = {p.stem: read_tensors(p, RESTART) for p in sorted(target.glob("*.safetensors")) if p.stem != "optimizer"}
    if "model" not in weights:
        raise TlearnError(f"checkpoint {target} has no model.safetensors; {RESTART}.")
    if expected is not None:
        for name, tensors in weights.items():
            check_tensors(tensors, expected, target / f"{name}.safetensors", RESTART)
    optimizer_file = target / "optimizer.safetensors"
    optimizer_tensors = read_tensors(optimizer_file, RESTART)
    bad = non_finite(optimizer_tensors)
    if bad:
        raise TlearnError(f"{optimizer_file} holds NaN or infinite values ({', '.join(bad[:3])}; the file was edited "
                          f"or damaged); {RESTART}.")
    try:
        optimizer = optimizer_from_files(optimizer_tensors, state.pop("optimizer"))
    except (ValueError, KeyError, TypeError) as exc:
        raise TlearnError(f"{optimizer_file} does not match {state_file} ({exc!r}); {RESTART}.") from None
    state["extra_weights"] = {k: v for k, v in weights.items() if k != "model"}
    return weights["model"], optimizer, state


def load_best(folder: Path, expected: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor] | None:
    """The best epoch's weights kept beside the epoch folders (None when there are none), checked to fit."""
    path = folder / BEST
    return read_checked(path, expected, RESTART) if path.is_file() else None


def restore_optimizer(optimizer: torch.optim.Optimizer, saved: dict, folder: Path) -> None:
    """Load a checkpoint's optimizer state into optimizer, refused (naming the checkpoint) unless its groups,
    parameters and per-parameter tensors fit the phase's parameters."""
    try:
        optimizer.load_state_dict(saved)
    except (ValueError, KeyError, TypeError, RuntimeError) as exc:
        raise TlearnError(f"the optimizer state of the checkpoint in {folder} does not fit this model's phase "
                          f"({exc}); {RESTART}.") from None
    for group in optimizer.param_groups:
        for p in group["params"]:
            for name, value in optimizer.state.get(p, {}).items():
                if isinstance(value, torch.Tensor) and value.dim() > 0 and value.shape != p.shape:
                    raise TlearnError(f"the optimizer state of the checkpoint in {folder} does not fit the model "
                                      f"({name} {tuple(value.shape)} for a parameter of {tuple(p.shape)}; the file "
                                      f"was edited or damaged); {RESTART}.")
