"""Small derived results kept on disk by content, so that a second identical run does not redo them: a leakage
check, a linear probe's cross-validated choice, report heatmaps.

One .npz file per result under CACHE/<kind>/<key>.npz: a JSON "meta" entry (the format, the key it was written
for, the result's fields) and any arrays. An entry is trusted only after its validator accepts it; an unreadable,
foreign or damaged entry is logged and ignored (the caller recomputes and overwrites it), never fatal.
"""
from __future__ import annotations

import json
import logging
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from .files import atomic_path

log = logging.getLogger("tlearn")

RESULT_FORMAT = 1
T = TypeVar("T")


class BadEntry(ValueError):
    """A cached result that does not fit its key or its inputs (raised by validators)."""


def result_path(cache_dir: str | Path, kind: str, key: str) -> Path:
    """Where the result `kind` for `key` lives."""
    return Path(cache_dir) / kind / f"{key}.npz"


def save_result(cache_dir: str | Path | None, kind: str, key: str, meta: dict[str, Any],
                arrays: dict[str, np.ndarray] | None = None) -> None:
    """Store a result (JSON-serialisable meta, numeric arrays); a read-only cache only costs time later."""
    if cache_dir is None:
        return
    path = result_path(cache_dir, kind, key)
    blob = json.dumps({"format": RESULT_FORMAT, "key": key, "meta": meta})
    try:
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez(f, __meta__=np.array(blob), **{k: np.asarray(v) for k, v in (arrays or {}).items()})
    except (OSError, TypeError, ValueError) as exc:
        log.debug("%s cache entry not written (%s: %s)", kind, type(exc).__name__, exc)


def load_result(cache_dir: str | Path | None, kind: str, key: str,
                validate: Callable[[dict[str, Any], dict[str, np.ndarray]], T]) -> T | None:
    """The result stored for `key`, as `validate(meta, arrays)` returns it; None when there is none or when the
    entry is unreadable or rejected by `validate` (a warning then names the file)."""
    if cache_dir is None:
        return None
    path = result_path(cache_dir, kind, key)
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
        doc = json.loads(str(arrays.pop("__meta__")))
        if not isinstance(doc, dict) or doc.get("format") != RESULT_FORMAT or doc.get("key") != key:
            raise BadEntry("written for another format or key")
        if not isinstance(doc.get("meta"), dict):
            raise BadEntry("no result fields")
        return validate(doc["meta"], arrays)
    except (OSError, EOFError, ValueError, KeyError, TypeError, IndexError, zipfile.BadZipFile) as exc:
        log.warning("%s cache entry %s is unreadable or invalid (%s: %s); computing it again", kind, path,
                    type(exc).__name__, exc)
        return None
