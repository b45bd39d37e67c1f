"""tlearn: transfer learning for image recognition, from a folder of images and a pretrained network.

The public names below are imported on first use (PEP 562), so that light modules such as tlearn.runtime
(onnxruntime + numpy + Pillow) and the CLI's argument parsing do not pay for importing torch.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from ._version import __version__
from .errors import DataError, TlearnError, WeightsError

_LAZY = {  # public name -> (submodule, attribute)
    "DEFAULT_BACKBONE": (".constants", "DEFAULT_BACKBONE"),
    "list_backbones": (".backbones", "list_specs"),
    "load_backbone": (".runs.source", "load_source"),  # a registry backbone or an earlier run
    "FitConfig": (".config", "FitConfig"),
    "fit": (".api", "fit"),
    "fit_config": (".fitting", "fit_config"),
    "Run": (".runs.run", "Run"),
    "load_run": (".runs.run", "load_run"),
    "rank_sources": (".rank.ranking", "rank_sources"),
}

__all__ = ["__version__", "DataError", "TlearnError", "WeightsError", *_LAZY]

if TYPE_CHECKING:
    from .backbones import list_specs as list_backbones  # noqa: F401
    from .runs.source import load_source as load_backbone  # noqa: F401
    from .config import FitConfig  # noqa: F401
    from .constants import DEFAULT_BACKBONE  # noqa: F401
    from .api import fit  # noqa: F401
    from .fitting import fit_config  # noqa: F401
    from .rank.ranking import rank_sources  # noqa: F401
    from .runs.run import Run, load_run  # noqa: F401


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'tlearn' has no attribute {name!r}")
    module, attr = _LAZY[name]
    value = getattr(importlib.import_module(module, __name__), attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
