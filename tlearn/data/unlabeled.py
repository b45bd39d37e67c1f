"""--unlabeled: images without labels that a run may learn from (distillation's student, the linear probe's
self-training or label spreading). A folder searched recursively, or a CSV manifest whose rows with an empty
label (or, without a label column, every row) are the unlabeled images. Images that are also val/test images are
refused (learning from them, even without labels, leaks the evaluation); with drop_train, copies of training
images are left out (they are labelled already)."""
from __future__ import annotations

import csv
from pathlib import Path

from ..errors import DataError
from ..files import spreadsheet_plain
from ..hashing import file_digest
from .images import is_image_file
from .layout import list_images
from .samples import DataSplits, Sample


def _manifest_paths(csv_path: Path) -> list[Path]:
    with open(csv_path, newline="") as f:
        reader = csv.DictReader(f)
        names = {c.strip().lower(): c for c in (reader.fieldnames or []) if c}
        if "path" not in names:
            raise DataError(f"--unlabeled {csv_path}: a manifest needs a header with a path column.")
        paths = []
        for row in reader:
            label = spreadsheet_plain((row.get(names["label"]) or "").strip()) if "label" in names else ""
            text = spreadsheet_plain((row.get(names["path"]) or "").strip())
            if text and not label:
                p = Path(text)
                paths.append(p if p.is_absolute() else csv_path.parent / p)
    return [p for p in paths if p.is_file() and is_image_file(p)]


def unlabeled_samples(source: str | Path, splits: DataSplits, drop_train: bool = False) -> list[Sample]:
    """Images of SOURCE as label -1; refuses images that are also val/test images (leakage). Contents are
    compared (sha256, remembered per process: the decoded cache hashes the same files again)."""
    source = Path(source)
    if source.is_file() and source.suffix.lower() == ".csv":
        paths = _manifest_paths(source)
    elif source.is_dir():
        paths = list_images(source)
    else:
        raise DataError(f"--unlabeled {source}: not a folder; give a folder of images (searched recursively) or a "
                        "CSV manifest (its rows with an empty label).")
    held_out = {file_digest(s.path) for s in splits.val + splits.test}
    leaked = [p for p in paths if file_digest(p) in held_out]
    if leaked:
        raise DataError(
            f"--unlabeled {source}: {len(leaked)} image(s) are also val/test images of {splits.root} "
            f"(e.g. {leaked[0]}); training on them, even without labels, would leak the evaluation images. "
            "Use images outside the evaluation splits."
        )
    if drop_train:
        labelled = {file_digest(s.path) for s in splits.train}
        paths = [p for p in paths if file_digest(p) not in labelled]
    return [Sample(p, -1) for p in dict.fromkeys(paths)]
