"""Exemplar replay: K training images per class, kept by the run as paths + sha256 (RUN/exemplars.json).

A fine-tuned extension trains on them beside the new images so that the old classes keep being seen. They
are chosen once (seeded, uniformly among a class's training images) and then handed down from run to run; a
file that is gone or whose content changed is an error that names it, never silently replaced.
"""
from __future__ import annotations

import json
import random
from collections.abc import Sequence
from pathlib import Path

from ..data.layout import Sample
from ..errors import TlearnError
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


def read_exemplars(run_dir: Path) -> list[dict] | None:
    path = Path(run_dir) / EXEMPLARS_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(layout.read_text(path))
        return [{"class": e["class"], "path": e["path"], "sha256": e["sha256"]} for e in data["exemplars"]]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise TlearnError(f"{path} is damaged ({exc!r}); extend from an earlier run, or delete it to choose the "
                          "exemplars again from the original training images.") from None


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
