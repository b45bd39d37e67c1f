"""RUN/search/search.json: everything the search has decided and measured, rewritten after every step, so a
killed `--strategy auto` continues where it stopped when the same command runs again."""
from __future__ import annotations

import json
from pathlib import Path

from ..errors import TlearnError
from ..files import atomic_write_text
from ..hashing import stable_hash
from .budget import Clock

STATE_FORMAT = 1
# FitConfig fields that may change between an interrupted search and its continuation
VOLATILE = {"out", "budget_minutes", "progress", "num_workers", "cache_dir", "device", "resume", "batch_size"}


def search_fingerprint(cfg_dict: dict, splits, backbone_info) -> dict:
    """What must match for a saved search to be continued."""
    return json.loads(json.dumps({
        "fit": {k: v for k, v in cfg_dict.items() if k not in VOLATILE},
        "classes": splits.classes,
        "train": stable_hash([str(s.path) for s in splits.train]),
        "val": stable_hash([str(s.path) for s in splits.val]),
        "backbone": backbone_info.to_dict(),
    }))


class SearchState:
    """The dict in search.json plus its path and the clock whose seconds it records."""

    def __init__(self, path: Path, data: dict, clock: Clock | None = None):
        self.path = path
        self.data = data
        self.clock = clock

    @classmethod
    def open(cls, path: Path, fingerprint: dict) -> "SearchState":
        """The saved search when it matches; a new, empty one otherwise (refused if it differs)."""
        if not path.is_file():
            return cls(path, {"format": STATE_FORMAT, "fingerprint": fingerprint, "spent_seconds": 0.0,
                              "sessions": 0, "candidates": [], "plan": None})
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise TlearnError(f"{path} is unreadable ({exc}); delete {path.parent} to search again.") from None
        if data.get("format") != STATE_FORMAT or data.get("fingerprint") != fingerprint:
            saved = data.get("fingerprint", {})
            diffs = [k for k in fingerprint if saved.get(k) != fingerprint[k]]
            diffs += [f"fit.{k}" for k in fingerprint["fit"] if saved.get("fit", {}).get(k) != fingerprint["fit"][k]]
            raise TlearnError(f"{path} holds a search with other data or settings ({', '.join(diffs) or 'format'}); "
                              f"choose another --out, or delete {path.parent} to search again.")
        return cls(path, data)

    @property
    def is_new(self) -> bool:
        return "facts" not in self.data

    def candidate(self, name: str) -> dict:
        return next(c for c in self.data["candidates"] if c["name"] == name)

    def save(self) -> None:
        if self.clock is not None:
            self.data["spent_seconds"] = round(self.clock.spent(), 3)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.path, json.dumps(self.data, indent=1, default=float) + "\n")
