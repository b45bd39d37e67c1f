"""Exemplar replay: K training images per class, kept by the run as paths + sha256 (RUN/exemplars.json).

A fine-tuned extension trains on them beside the new images so that the old classes keep being seen. They
are chosen once (seeded, uniformly among a class's training images) and then handed down from run to run; a
file that is gone or whose content changed is an error that names it, never silently replaced.
"""
from __future__ import annotations

import json
import random
import re
from collections.abc import Sequence
from pathlib import Path

from ..data.layout import DataSplits, Sample
from ..errors import TlearnError
from ..files import inside
from ..hashing import file_digest
from ..runs import layout

EXEMPLARS_FILE = "exemplars.json"


def choose_exemplars(samples: Sequence[Sample], classes: list[str], names: Sequence[str], k: int,
                     seed: int) -> list[dict]:
    """Up to k images of each class in names (samples labelled by index into classes), with their sha256."""
    rng = random.Random(seed)
    chosen = []
    for name in names:
        paths = sorted(str(s.path) for s in samples if classes[s.label] == name)
        for path in sorted(rng.sample(paths, min(k, len(paths)))):
            chosen.append({"class": name, "path": path, "sha256": file_digest(path)})
    return chosen


_SHA256 = re.compile(r"[0-9a-f]{64}")


def _home(root: str) -> Path:
    """The folder a lineage step's images belong to: its class tree, or its manifest's folder."""
    path = Path(root).expanduser().resolve()
    return path.parent if path.suffix.lower() == ".csv" else path


def _exemplars_problem(data, classes: Sequence[str], homes: list[Path], listed: set[str]) -> str | None:
    """What is wrong with exemplars.json's content (None when it is usable): its types, classes the run has, at most
    per_class of each, no image twice, and each image inside the data it was chosen from."""
    if not isinstance(data, dict) or not isinstance(data.get("exemplars"), list):
        return "not {per_class, exemplars: [...]}"
    k = data.get("per_class")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        return f"per_class {k!r} is not a whole number from 1"
    counts: dict[str, int] = {}
    seen: set[str] = set()
    for i, e in enumerate(data["exemplars"], start=1):
        if not isinstance(e, dict) or not all(isinstance(e.get(key), str) for key in ("class", "path", "sha256")):
            return f"entry {i} is not {{class, path, sha256}} strings"
        if e["class"] not in classes:
            return f"entry {i} has class {e['class']!r}, which the run does not have"
        counts[e["class"]] = counts.get(e["class"], 0) + 1
        if counts[e["class"]] > k:
            return f"class {e['class']!r} has more than per_class {k} exemplars"
        if not _SHA256.fullmatch(e["sha256"]):
            return f"entry {i} has sha256 {e['sha256']!r}, not 64 hexadecimal digits"
        if e["path"] in seen:
            return f"entry {i} repeats {e['path']}"
        seen.add(e["path"])
        path = Path(e["path"])
        try:
            resolved = path.resolve()
        except (OSError, RuntimeError):
            return f"entry {i}: {path} cannot be followed (a symbolic link loop)"
        if not path.is_absolute() or not (e["path"] in listed or any(inside(resolved, h) for h in homes)):
            return (f"entry {i}: {path} is outside the data the run was trained on "
                    f"({', '.join(map(str, homes)) or 'none recorded'})")
    return None


def read_exemplars(run_dir: Path, classes: Sequence[str], roots: Sequence[str],
                   data: Sequence[DataSplits] = ()) -> list[dict] | None:
    """RUN/exemplars.json (None when the run has none), checked whole before any image is read: each entry of a
    class of the run (classes), at most per_class of each, and an image inside the data folders it was chosen
    from (roots: the lineage's data, a class tree or a manifest's folder) or one of their train images (data)."""
    path = Path(run_dir) / EXEMPLARS_FILE
    if not path.is_file():
        return None
    try:
        content = json.loads(layout.read_text(path))
    except (OSError, json.JSONDecodeError) as exc:
        raise TlearnError(f"{path} is damaged ({exc}); extend from an earlier run, or delete it to choose the "
                          "exemplars again from the original training images.") from None
    problem = _exemplars_problem(content, classes, [_home(r) for r in roots if r],
                                 {str(s.path) for d in data for s in d.train})
    if problem:
        raise TlearnError(f"{path} is not usable ({problem}; the file was edited or damaged). Extend from an intact "
                          "run, or delete it to choose the exemplars again from the original training images.")
    return [{"class": e["class"], "path": e["path"], "sha256": e["sha256"]} for e in content["exemplars"]]


def exemplar_samples(exemplars: list[dict], classes: list[str], source: Path) -> list[Sample]:
    """The exemplars as training samples, each file checked against its recorded sha256."""
    out = []
    for e in exemplars:
        path = Path(e["path"])
        if not path.is_file():
            raise TlearnError(f"exemplar {path} (class {e['class']!r}, recorded in {source}) is gone; put it back, "
                              "or extend without --replay.")
        if file_digest(path) != e["sha256"]:
            raise TlearnError(f"exemplar {path} (class {e['class']!r}, recorded in {source}) changed since it was "
                              "chosen (sha256 differs); restore it, or extend without --replay.")
        out.append(Sample(path, classes.index(e["class"])))
    return out


def write_exemplars(path: Path, exemplars: list[dict], per_class: int) -> None:
    layout.write_json(path, {"per_class": per_class, "exemplars": exemplars})
