"""Atomic file writes: a reader (or a crash) never sees a half-written run file, checkpoint or cache entry."""
from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _default_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; when the block succeeds it replaces `path` in one step."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, _default_mode())  # mkstemp makes 0600 files; run files are as readable as any other
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def atomic_write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def default_cache_dir() -> Path:
    """Where caches live unless a command is given --cache-dir: TLEARN_CACHE, else $XDG_CACHE_HOME/tlearn, else
    ~/.cache/tlearn."""
    if os.environ.get("TLEARN_CACHE"):
        return Path(os.environ["TLEARN_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "tlearn"


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def _formula_like(text: str) -> bool:
    return text.startswith(_FORMULA_START) and not _PLAIN_NUMBER.fullmatch(text)


def spreadsheet_safe(cell):
    """A CSV cell that a spreadsheet shows as text: a string starting with =, +, -, @, tab or carriage return
    (a formula to a spreadsheet) gets a leading single quote; plain numbers such as -0.5 and non-strings are
    returned as they are. A string of quotes before such a start gets one more, so spreadsheet_plain undoes
    every cell exactly."""
    if isinstance(cell, str) and (_formula_like(cell) or (cell.startswith("'") and _formula_like(cell.lstrip("'")))):
        return "'" + cell
    return cell


def spreadsheet_plain(cell: str) -> str:
    """Undo spreadsheet_safe: the cell as it was before tlearn wrote it."""
    if isinstance(cell, str) and cell.startswith("'") and _formula_like(cell.lstrip("'")):
        return cell[1:]
    return cell


def spreadsheet_row(cells) -> list:
    """spreadsheet_safe applied to every cell of a CSV row."""
    return [spreadsheet_safe(c) for c in cells]


def inside(path: Path, root: Path) -> bool:
    """Whether path is root or below it (both as given: resolve them first to follow links and '..')."""
    return path == root or root in path.parents
