"""One process per cell: several `tlearn study` processes (or machines sharing the folder) can work on one
study at once, each training the cells no one else holds. A lock left by a process that died is taken over."""
from __future__ import annotations

import json
import os
import socket
from pathlib import Path


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def holder(path: Path) -> dict | None:
    """Who holds the lock at path ({"pid", "host"}), or None."""
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def claim(path: Path) -> bool:
    """Take the lock file at path; False when a live process (or one on another host) holds it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    me = {"pid": os.getpid(), "host": socket.gethostname()}
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            other = holder(path)
            stale = other is not None and other.get("host") == me["host"] and not _alive(int(other.get("pid", -1)))
            if not stale:
                return False
            path.unlink(missing_ok=True)
            continue
        with os.fdopen(fd, "w") as f:
            json.dump(me, f)
        return True
    return False


def release(path: Path) -> None:
    path.unlink(missing_ok=True)
