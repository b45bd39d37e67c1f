"""Where a manifest's rows point, one rule for single-label and multi-label manifests.

Absolute paths are taken as written. A relative path is read from the CSV's folder; one that resolves outside
that folder (through '..' or a symbolic link) is still read, but warned about once per manifest, naming its lines.
"""
from __future__ import annotations

import logging
from pathlib import Path

from ..files import inside

log = logging.getLogger("tlearn")
_SHOWN = 5  # lines named in the warning


class ManifestPaths:
    """The paths of one manifest's rows, and the relative ones that lead outside its folder."""

    def __init__(self, csv_path: Path):
        self.csv_path = csv_path
        self.root = csv_path.parent.resolve()
        self.outside: list[str] = []

    def path(self, written: str, line: int) -> Path:
        """The image path a row gives (written as in the CSV; line: the row's line number, for the warning)."""
        path = Path(written)
        if path.is_absolute():
            return path
        path = self.csv_path.parent / path
        try:
            resolved = path.resolve()
        except (OSError, RuntimeError):  # a symbolic link loop: the image reader skips it with its reason
            return path
        if not inside(resolved, self.root):
            self.outside.append(f"line {line}: {written} -> {resolved}")
        return path

    def warn(self) -> None:
        """Log the rows that lead outside the manifest's folder (nothing when there are none)."""
        if not self.outside:
            return
        more = f" (and {len(self.outside) - _SHOWN} more)" if len(self.outside) > _SHOWN else ""
        log.warning("manifest %s: %d relative path(s) lead outside its folder %s: %s%s. They are read; if that is "
                    "not meant, check the rows (a '..' too many, or a symbolic link out of the folder).",
                    self.csv_path, len(self.outside), self.root, "; ".join(self.outside[:_SHOWN]), more)
