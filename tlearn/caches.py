"""What tlearn's cache folder holds, and clearing it (`tlearn cache`). Torch-free, so the command starts fast.

The cache folder (TLEARN_CACHE, else $XDG_CACHE_HOME/tlearn, else ~/.cache/tlearn) holds one folder per kind, each
with a layout of its own (LAYOUTS):
- features/  one SQLite file per backbone weights x transform x precision (`<key>.sqlite`, with its -wal and -shm)
- decoded/   decoded, resized images: `<key>.npy` with its `<key>.json`; `.<key>.*` are writes in progress
- leakage/   thumbnails of the duplicate check (`thumbs-<size>-v<version>.sqlite`, with its -wal and -shm) and
             the check's results (`<key>.npz`, tlearn.result_cache)
- probe/, heatmaps/, facts/  the probe's cross-validation, the report's heatmaps and data facts (`<key>.npz`,
             tlearn.result_cache)
- demo/      the demo's image trees (`<source>-<train>-<val>-<test>-seed<k>/` with `.complete`)

Only what matches a layout is an entry, and only entries are removed; anything else (a file of the user's, a
symbolic link, a folder of a newer tlearn) is listed as unknown and left alone. Links are never followed.
"Last used" is the later of a file's modification and access times: with the usual relatime mounts, access times
move at most once a day, so --max-size removes the entries least recently used to within about a day.
"""
from __future__ import annotations

import os
import re
import shutil
import stat
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from .errors import TlearnError
from .files import default_cache_dir

GB = 1e9  # --max-size is in GB of 10^9 bytes, as disks are sold
IN_PROGRESS_SECONDS = 3600  # a write in progress younger than this may belong to a running process: kept
OLDEST_SHOWN = 3


@dataclass
class Entry:
    """One removable unit of a cache: its files (or one folder), their size and when it was last used."""

    kind: str
    name: str
    paths: list[Path]
    bytes: int
    last_used: float
    in_progress: bool = False  # a partial write (a temporary file or folder)

    def to_dict(self) -> dict:
        return {"kind": self.kind, "name": self.name, "paths": [str(p) for p in self.paths], "bytes": self.bytes,
                "last_used": _iso(self.last_used), "in_progress": self.in_progress}


@dataclass
class Unknown:
    path: Path
    bytes: int
    why: str

    def to_dict(self) -> dict:
        return {"path": str(self.path), "bytes": self.bytes, "why": self.why}


@dataclass
class CacheState:
    root: Path
    entries: list[Entry] = field(default_factory=list)
    unknown: list[Unknown] = field(default_factory=list)

    def of_kind(self, kind: str) -> list[Entry]:
        return [e for e in self.entries if e.kind == kind]

    @property
    def bytes(self) -> int:
        return sum(e.bytes for e in self.entries)

    def to_dict(self) -> dict:
        """The JSON `tlearn cache --json` prints: per kind its size, entries and oldest entries; unknown files."""
        kinds = {}
        for kind in LAYOUTS:
            entries = self.of_kind(kind)
            kinds[kind] = {"bytes": sum(e.bytes for e in entries), "entries": len(entries),
                           "in_progress": sum(e.in_progress for e in entries),
                           "oldest": [e.to_dict() for e in sorted(entries, key=lambda e: e.last_used)[:OLDEST_SHOWN]]}
        return {"cache_dir": str(self.root), "exists": self.root.is_dir(), "bytes": self.bytes, "kinds": kinds,
                "unknown": [u.to_dict() for u in self.unknown],
                "unknown_bytes": sum(u.bytes for u in self.unknown)}


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def _lstat(path: Path) -> os.stat_result:
    return os.lstat(path)


def _used(st: os.stat_result) -> float:
    return max(st.st_mtime, st.st_atime)


def _is_file(st: os.stat_result) -> bool:
    return stat.S_ISREG(st.st_mode)


def _is_dir(st: os.stat_result) -> bool:
    return stat.S_ISDIR(st.st_mode)


def _tree(folder: Path) -> tuple[int, float, list[str]]:
    """(bytes, last used, what is not a plain file or folder) of a folder, without following links."""
    total, used, odd = 0, _used(_lstat(folder)), []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
        for name in dirnames + filenames:
            st = _lstat(Path(dirpath) / name)
            if _is_file(st):
                total += st.st_size
                used = max(used, _used(st))
            elif not _is_dir(st):
                odd.append(str(Path(dirpath, name).relative_to(folder)))
    return total, used, odd


def _size(path: Path) -> int:
    st = _lstat(path)
    if _is_dir(st):
        return _tree(path)[0]
    return st.st_size if _is_file(st) else 0


# --- layouts: each gets the kind's folder and returns (entries, unknown) ---------------------------------------

def _sqlite_files(folder: Path, kind: str, pattern: re.Pattern) -> tuple[list[Entry], list[Unknown]]:
    """SQLite caches: NAME.sqlite with NAME.sqlite-wal / -shm / -journal beside it."""
    groups: dict[str, list[Path]] = {}
    unknown: list[Unknown] = []
    for path in sorted(folder.iterdir()):
        st = _lstat(path)
        main = re.sub(r"-(wal|shm|journal)$", "", path.name)
        if _is_file(st) and pattern.fullmatch(main):
            groups.setdefault(main, []).append(path)
        else:
            unknown.append(Unknown(path, _size(path), _why(st, f"not a {kind} cache file")))
    entries = []
    for main, paths in groups.items():
        stats = [_lstat(p) for p in paths]
        entries.append(Entry(kind, main, paths, sum(s.st_size for s in stats), max(_used(s) for s in stats),
                             in_progress=not (folder / main).exists()))
    return entries, unknown


FEATURES_FILE = re.compile(r"[0-9a-f]{24}\.sqlite")
LEAKAGE_FILE = re.compile(r"thumbs-\d+-v\d+\.sqlite")
DECODED_FILE = re.compile(r"([0-9a-f]{24})\.(npy|json)")
DECODED_PARTIAL = re.compile(r"\.([0-9a-f]{24})\..+\.(npy|json)")  # tempfile.mkstemp(prefix=".KEY.", suffix)
RESULT_FILE = re.compile(r"[0-9a-f]{16,64}\.npz")  # tlearn.result_cache: CACHE/<kind>/<key>.npz
DEMO_TREE = re.compile(r"[a-z0-9-]+-\d+-\d+-\d+-seed\d+")
DEMO_PARTIAL = re.compile(r"\.([a-z0-9-]+-\d+-\d+-\d+-seed\d+)\.\d+\.tmp")
DEMO_SPLITS = ("train", "val", "test")


def _features(folder: Path) -> tuple[list[Entry], list[Unknown]]:
    return _sqlite_files(folder, "features", FEATURES_FILE)


def _leakage(folder: Path) -> tuple[list[Entry], list[Unknown]]:
    """The thumbnail database and, beside it, the cached check results (KEY.npz)."""
    thumbs, others = _sqlite_files(folder, "leakage", LEAKAGE_FILE)
    results, unknown = _key_files(folder, "leakage", RESULT_FILE, [u.path for u in others])
    return thumbs + results, unknown


def _key_files(folder: Path, kind: str, pattern: re.Pattern, paths: list[Path] | None = None
               ) -> tuple[list[Entry], list[Unknown]]:
    """One file per entry, KEY.EXT, written atomically (.KEY.EXT.* while it is written)."""
    entries, unknown = [], []
    for path in sorted(folder.iterdir()) if paths is None else paths:
        st = _lstat(path)
        partial = path.name.startswith(".") and pattern.fullmatch(path.name[1:].rsplit(".", 1)[0])
        if _is_file(st) and (pattern.fullmatch(path.name) or partial):
            entries.append(Entry(kind, path.name, [path], st.st_size, _used(st), in_progress=bool(partial)))
        else:
            unknown.append(Unknown(path, _size(path), _why(st, f"not a {kind} cache file")))
    return entries, unknown


def _results(kind: str) -> Layout:
    return lambda folder: _key_files(folder, kind, RESULT_FILE)


def _decoded(folder: Path) -> tuple[list[Entry], list[Unknown]]:
    """KEY.npy + KEY.json are one entry; .KEY.*.npy/.json are writes in progress (or left by a crash)."""
    groups: dict[tuple[str, bool], list[Path]] = {}
    unknown: list[Unknown] = []
    for path in sorted(folder.iterdir()):
        st = _lstat(path)
        whole, partial = DECODED_FILE.fullmatch(path.name), DECODED_PARTIAL.fullmatch(path.name)
        if _is_file(st) and (whole or partial):
            groups.setdefault(((whole or partial).group(1), bool(partial)), []).append(path)
        else:
            unknown.append(Unknown(path, _size(path), _why(st, "not a decoded-image cache file")))
    entries = []
    for (key, partial), paths in sorted(groups.items()):
        stats = [_lstat(p) for p in paths]
        entries.append(Entry("decoded", key, paths, sum(s.st_size for s in stats), max(_used(s) for s in stats),
                             in_progress=partial or not (folder / f"{key}.json").exists()))
    return entries, unknown


def _demo(folder: Path) -> tuple[list[Entry], list[Unknown]]:
    """A demo tree: .complete and train/val/test class folders of PNG files, nothing else."""
    entries, unknown = [], []
    for path in sorted(folder.iterdir()):
        st = _lstat(path)
        partial = DEMO_PARTIAL.fullmatch(path.name)
        if not (_is_dir(st) and (DEMO_TREE.fullmatch(path.name) or partial)):
            unknown.append(Unknown(path, _size(path), _why(st, "not a demo image tree")))
            continue
        size, used, odd = _tree(path)
        foreign = odd or _foreign_demo_files(path)
        if foreign:
            unknown.append(Unknown(path, size, f"a demo tree with files tlearn does not write there ({foreign[0]})"))
        else:
            entries.append(Entry("demo", path.name, [path], size, used,
                                 in_progress=bool(partial) or not (path / ".complete").is_file()))
    return entries, unknown


def _foreign_demo_files(tree: Path) -> list[str]:
    foreign = []
    for dirpath, _, filenames in os.walk(tree, followlinks=False):
        rel = Path(dirpath).relative_to(tree)
        for name in filenames:
            ok = (rel == Path(".") and name == ".complete") or (
                len(rel.parts) == 2 and rel.parts[0] in DEMO_SPLITS and name.endswith(".png"))
            if not ok:
                foreign.append(str(rel / name))
    return foreign


def _why(st: os.stat_result, what: str) -> str:
    return "a symbolic link (never followed)" if stat.S_ISLNK(st.st_mode) else what


Layout = Callable[[Path], tuple[list[Entry], list[Unknown]]]
LAYOUTS: dict[str, Layout] = {"features": _features, "decoded": _decoded, "leakage": _leakage, "demo": _demo,
                              "probe": _results("probe"), "heatmaps": _results("heatmaps"),
                              "facts": _results("facts")}
KIND_HELP = {"features": "backbone features of images (SQLite, one file per backbone and transform)",
             "decoded": "images decoded and resized for training (uint8 arrays)",
             "leakage": "thumbnails for the duplicate and leakage checks (SQLite) and their cached results",
             "demo": "the demo's image folders",
             "probe": "the linear probe's cross-validation results, per set of features",
             "heatmaps": "the report's Grad-CAM heatmaps, per model and image",
             "facts": "data facts (image size, grey share, BatchNorm shift) that choose a fine-tuning recipe"}


def scan(root: str | Path | None = None) -> CacheState:
    """What the cache folder holds: its entries by kind, and what tlearn did not write (unknown)."""
    root = Path(root).expanduser() if root else default_cache_dir()
    state = CacheState(root)
    if root.exists() and not root.is_dir():
        raise TlearnError(f"the cache folder {root} is a file, not a folder; give --cache-dir a folder (or set "
                          "TLEARN_CACHE to one).")
    if not root.is_dir():
        return state
    for path in sorted(root.iterdir()):
        st = _lstat(path)
        layout = LAYOUTS.get(path.name)
        if layout is None or not _is_dir(st):
            state.unknown.append(Unknown(path, _size(path), _why(st, "not a cache kind tlearn writes")))
            continue
        entries, unknown = layout(path)
        state.entries += entries
        state.unknown += unknown
    return state


def check_kind(kind: str) -> str:
    if kind not in LAYOUTS:
        raise TlearnError(f"unknown cache kind {kind!r}; choose from {', '.join(LAYOUTS)} (or none for all).")
    return kind


def _removable(entry: Entry, now: float) -> bool:
    """Whole entries, and writes in progress old enough that no running process still writes them."""
    return not entry.in_progress or now - entry.last_used > IN_PROGRESS_SECONDS


def to_clear(state: CacheState, kind: str | None = None, now: float | None = None) -> list[Entry]:
    """The entries `--clear [KIND]` removes: all of that kind (or of every kind), except recent writes in
    progress."""
    now = time.time() if now is None else now
    kinds = [check_kind(kind)] if kind else list(LAYOUTS)
    return [e for e in state.entries if e.kind in kinds and _removable(e, now)]


def to_shrink(state: CacheState, max_bytes: float, now: float | None = None) -> list[Entry]:
    """The least recently used entries whose removal brings the cache's entries to at most max_bytes."""
    if max_bytes < 0:
        raise TlearnError(f"--max-size must be at least 0 GB, got {max_bytes / GB:g}.")
    now = time.time() if now is None else now
    total, chosen = state.bytes, []
    for entry in sorted(state.entries, key=lambda e: e.last_used):
        if total <= max_bytes:
            break
        if _removable(entry, now):
            chosen.append(entry)
            total -= entry.bytes
    return chosen


def remove(entries: Iterable[Entry], root: Path) -> list[Entry]:
    """Delete the entries' files (a folder entry with its content, links unfollowed); what was removed.
    Every path is checked to lie inside root/<kind>/ first."""
    removed = []
    for entry in entries:
        base = Path(root) / entry.kind
        for path in entry.paths:
            if path.parent != base:
                raise TlearnError(f"refusing to remove {path}: not directly inside {base}.")
            st = _lstat(path) if os.path.lexists(path) else None
            if st is None:
                continue
            if _is_dir(st):
                shutil.rmtree(path)  # rmtree unlinks symbolic links inside, it does not follow them
            else:
                path.unlink()
        removed.append(entry)
    return removed
