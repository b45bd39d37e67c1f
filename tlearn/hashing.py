"""Content hashes used for weight checksums and cache keys."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def file_identity(path: str | Path) -> list:
    """What tells a file changed without reading it, for cache keys over many files: size, mtime, ctime (not
    settable by copy tools) and inode; ["missing"] when it cannot be stat'ed."""
    try:
        st = Path(path).stat()
    except OSError:
        return ["missing"]
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


_FILE_DIGESTS: dict[tuple, str] = {}


def file_digest(path: str | Path) -> str:
    """sha256_file remembered for this process by (path, size, mtime, inode): the leakage check, the decoded
    image cache and the feature cache hash the same files once per run, and an edited file misses."""
    st = Path(path).stat()
    key = (str(path), st.st_size, st.st_mtime_ns, st.st_ino)
    digest = _FILE_DIGESTS.get(key)
    if digest is None:
        if len(_FILE_DIGESTS) >= 1_000_000:  # a long-lived process (serve) does not grow without bound
            _FILE_DIGESTS.clear()
        digest = _FILE_DIGESTS[key] = sha256_file(path)
    return digest


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def stable_hash(obj: Any, length: int = 16) -> str:
    """Short hash of a JSON-serialisable object, independent of dict order."""
    blob = json.dumps(obj, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:length]
