"""Tensors read back from tlearn's own files (a run's model, a checkpoint's weights and optimizer state, the best
and averaged weights): safetensors only, never unpickled, and checked before any of them is loaded into a model.

read_tensors   the file's tensors, or a TlearnError naming the file when it is damaged, empty, a pickle or
               anything else that is not safetensors (the format library's own error is kept in the message).
check_tensors  the tensors against what the model they are for holds: the same names, shapes and kind of
               number (floating or whole), every value finite; else a TlearnError naming the file, the first
               problems found, and what to do.
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch

from ..errors import TlearnError

_SHOWN = 3  # names listed per problem


def read_tensors(path: str | Path, fix: str) -> dict[str, torch.Tensor]:
    """The tensors of the safetensors file PATH; fix: what the user should do when it cannot be read (a clause:
    "train the run again")."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError, TypeError) as exc:
        raise TlearnError(f"{path} is damaged or not a safetensors file ({exc}); {fix}.") from None


def _names(names: list[str]) -> str:
    more = f" and {len(names) - _SHOWN} more" if len(names) > _SHOWN else ""
    return ", ".join(names[:_SHOWN]) + more


def _kind(t: torch.Tensor) -> str:
    if t.dtype == torch.bool:
        return "bool"
    return "complex" if t.is_complex() else "float" if t.is_floating_point() else "int"


def non_finite(tensors: Mapping[str, torch.Tensor]) -> list[str]:
    """The names of floating tensors holding NaN or infinite values."""
    return [k for k, v in tensors.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]


def tensor_problems(state: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Tensor]) -> list[str]:
    """What keeps state from being loaded where expected's tensors are (empty when it fits)."""
    problems = []
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if missing:
        problems.append(f"missing {_names(missing)}")
    if unexpected:
        problems.append(f"unexpected {_names(unexpected)}")
    shapes = [f"{k} {tuple(state[k].shape)} where the model has {tuple(v.shape)}" for k, v in expected.items()
              if k in state and state[k].shape != v.shape]
    if shapes:
        problems.append("shapes " + _names(shapes))
    kinds = [f"{k} {state[k].dtype} where the model has {v.dtype}" for k, v in expected.items()
             if k in state and _kind(state[k]) != _kind(v)]
    if kinds:
        problems.append("number types " + _names(kinds))
    bad = non_finite({k: v for k, v in state.items() if k in expected})
    if bad:
        problems.append(f"NaN or infinite values in {_names(bad)}")
    return problems


def check_tensors(state: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Tensor], path: str | Path,
                  fix: str) -> dict[str, torch.Tensor]:
    """state when it fits expected (a model's state_dict()), else a TlearnError naming PATH and the problems."""
    problems = tensor_problems(state, expected)
    if problems:
        raise TlearnError(f"{path} does not fit the model it is for ({'; '.join(problems)}; the file was edited or "
                          f"damaged); {fix}.")
    return dict(state)


def read_checked(path: str | Path, expected: Mapping[str, torch.Tensor], fix: str) -> dict[str, torch.Tensor]:
    """read_tensors then check_tensors."""
    return check_tensors(read_tensors(path, fix), expected, path, fix)
