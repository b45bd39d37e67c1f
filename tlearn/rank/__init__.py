"""Transferability ranking: which source (ImageNet backbone, timm model, earlier tlearn run) suits a target best.

tlearn.rank.metrics (numpy only) holds LogME, LEEP, NCE and H-score; tlearn.rank.ranking scores sources on a
dataset (imported on first use: it needs torch).
"""
from __future__ import annotations

import importlib

from .metrics import METRICS, hscore, leep, logme, nce

_LAZY = {"rank_sources": ".ranking", "Ranking": ".ranking", "RankRow": ".ranking", "format_table": ".ranking"}

__all__ = ["METRICS", "hscore", "leep", "logme", "nce", *_LAZY]


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'tlearn.rank' has no attribute {name!r}")
    return getattr(importlib.import_module(_LAZY[name], __name__), name)
