"""On-disk feature cache, outside run directories, shared by every run on the same images and backbone.

One SQLite file per (backbone weights, transform, precision); rows keyed by the image file's sha256, so
renamed or copied files hit and edited files miss. Each batch is committed, so an interrupted
extraction keeps what it computed.
"""
from __future__ import annotations

import hashlib
import os
import sqlite3
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..files import default_cache_dir  # noqa: F401 - re-exported: callers import it from here
from ..hashing import stable_hash

FEATURE_FORMAT_VERSION = 1


def module_fingerprint(module: nn.Module) -> str:
    """sha256 over parameter and buffer values: identical weights share cached features."""
    h = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        h.update(name.encode())
        t = tensor.detach().cpu().contiguous()
        h.update(str(t.dtype).encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


class FeatureCache:
    def __init__(self, root: str | Path, key_parts: dict):
        self.key = stable_hash({**key_parts, "format": FEATURE_FORMAT_VERSION}, length=24)
        self.path = Path(root) / "features" / f"{self.key}.sqlite"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, timeout=60)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS features (file_sha256 TEXT PRIMARY KEY, dim INT, data BLOB)")
        self._db.commit()

    def get_many(self, hashes: list[str]) -> dict[str, np.ndarray]:
        found: dict[str, np.ndarray] = {}
        unique = list(dict.fromkeys(hashes))
        for start in range(0, len(unique), 500):
            chunk = unique[start : start + 500]
            rows = self._db.execute(
                f"SELECT file_sha256, data FROM features WHERE file_sha256 IN ({','.join('?' * len(chunk))})", chunk
            )
            for digest, blob in rows:
                found[digest] = np.frombuffer(blob, dtype=np.float32)
        return found

    def put_many(self, items: list[tuple[str, np.ndarray]]) -> None:
        self._db.executemany(
            "INSERT OR REPLACE INTO features VALUES (?, ?, ?)",
            [(d, int(v.shape[0]), np.ascontiguousarray(v, dtype=np.float32).tobytes()) for d, v in items],
        )
        self._db.commit()

    def __len__(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM features").fetchone()[0]

    def close(self) -> None:
        self._db.close()
