"""Find labelled images on disk: the DATA layout of DESIGN.md.

DATA is one of
- a folder with train/ and optionally val/ and test/, each a class tree <split>/<class>/<image>;
- a folder that is itself a class tree (split stratified into train/val with a seed);
- a CSV manifest with columns path,label and optionally split and group (paths relative to the CSV).
With no val split, a stratified part of train is held out for model selection (group by group when samples carry
a group: a patient id from the manifest or from --group-by, see data.groups). test is only evaluated.
"""
from __future__ import annotations

import csv
import errno
import logging
from collections import Counter
from pathlib import Path

from sklearn.model_selection import train_test_split

from ..constants import DEFAULT_VAL_FRACTION
from ..errors import DataError
from ..files import inside, spreadsheet_plain
from .groups import apply_group_regex, grouped_holdout
from .images import is_image_file
from .manifest_paths import ManifestPaths
from .multilabel import TASK_MULTILABEL, load_multilabel_splits, manifest_kind
from .samples import SPLITS, DataSplits, Sample, SkippedFile

__all__ = ["SPLITS", "DataSplits", "Sample", "SkippedFile", "list_images", "load_splits", "read_class_tree",
           "read_labelled_folder"]

log = logging.getLogger("tlearn")

# --val-fraction 0 with no val/: nothing held out; the linear probe's settings come from cross-validation on train
NO_VAL_SOURCE = "none (--val-fraction 0): settings chosen by cross-validation on train"


def _link_target(path: Path) -> tuple[Path | None, str | None]:
    """(where a symbolic link leads, None), or (None, why it cannot be followed): a loop, or an OSError."""
    try:
        return path.resolve(), None
    except RuntimeError:  # Python < 3.13: a symbolic link loop
        return None, "symbolic link loop (it leads back to itself); not read"
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return None, "symbolic link loop (it leads back to itself); not read"
        return None, f"cannot be read ({exc.strerror or exc}); not read"


def read_class_tree(folder: Path, root: Path | None = None) -> tuple[dict[str, list[Path]], list[SkippedFile]]:
    """Map each class folder name to its image files (searched recursively), sorted for determinism.

    Symbolic links are followed only to targets inside root (default: folder): a link out of the data folder is
    skipped and listed, as is a linked folder below a class folder (never searched) and a link that loops or
    cannot be read.
    """
    if not folder.is_dir():
        raise DataError(f"{folder} is not a folder; expected a class tree {folder}/<class>/<image>.")
    real_root = (root or folder).resolve()
    skipped: list[SkippedFile] = []
    tree: dict[str, list[Path]] = {}
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_symlink():
            target, problem = _link_target(entry)
            if problem or not inside(target, real_root):
                skipped.append(SkippedFile(str(entry), problem or f"symbolic link to {target}, outside the data "
                                                                  f"folder {real_root}; not read"))
                continue
        if entry.is_file():
            skipped.append(SkippedFile(str(entry), "not inside a class folder"))
            continue
        if not entry.is_dir():
            continue
        files = []
        for path in sorted(entry.rglob("*")):
            if any(part.startswith(".") for part in path.relative_to(entry).parts):
                continue
            if path.is_symlink():
                target, problem = _link_target(path)
                if problem:
                    skipped.append(SkippedFile(str(path), problem))
                    continue
                if path.is_dir():
                    skipped.append(SkippedFile(str(path), f"symbolic link to the folder {target}; linked folders "
                                                          "inside a class folder are not searched"))
                    continue
                if not inside(target, real_root):
                    skipped.append(SkippedFile(str(path), f"symbolic link to {target}, outside the data folder "
                                                          f"{real_root}; not read"))
                    continue
            if not path.is_file():
                continue
            if is_image_file(path):
                files.append(path)
            else:
                skipped.append(SkippedFile(str(path), f"not an image file (extension '{path.suffix}')"))
        tree[entry.name] = files
    _warn_links(skipped, real_root)
    if not tree:
        raise DataError(f"{folder} has no class folders; put images in {folder}/<class_name>/<image>.")
    empty = [name for name, files in tree.items() if not files]
    if empty:
        raise DataError(
            f"class folder(s) {', '.join(str(folder / e) for e in empty)} contain no images; "
            "add images or remove the folder."
        )
    return tree, skipped


def _warn_links(skipped: list[SkippedFile], root: Path) -> None:
    links = [s for s in skipped if s.reason.startswith("symbolic link")]
    if links:
        log.warning("%d symbolic link(s) under %s skipped (outside the data folder, loops, or linked folders), e.g. %s: "
                    "%s; they are listed with the skipped files", len(links), root, links[0].path, links[0].reason)


def read_labelled_folder(folder: str | Path, classes: list[str],
                         group_by: str | None = None) -> tuple[list[Sample], list[SkippedFile]]:
    """Read a class tree whose class names must be a subset of a trained model's classes (with each image's
    group from a manifest's group column or the group_by regex, when given)."""
    folder = Path(folder).expanduser().resolve()
    groups: dict[Path, str] = {}
    if folder.suffix.lower() == ".csv":
        rows = _read_manifest(folder)
        tree: dict[str, list[Path]] = {}
        for path, label, _, group in rows:
            tree.setdefault(label, []).append(path)
            if group:
                groups[path] = group
        skipped: list[SkippedFile] = []
    else:
        tree, skipped = read_class_tree(folder)
    unknown = sorted(set(tree) - set(classes))
    if unknown:
        raise DataError(
            f"{folder} has classes the model does not know: {unknown}; the model's classes are {classes}."
        )
    index = {name: i for i, name in enumerate(classes)}
    samples = [Sample(p, index[name], groups.get(p)) for name in sorted(tree) for p in tree[name]]
    if group_by:
        samples, _ = apply_group_regex(samples, group_by, folder.parent if folder.is_file() else folder,
                                       required=False)
    return samples, skipped


def _check_classes(train: dict[str, list], other: dict[str, list], split: str, root: Path) -> None:
    missing, extra = sorted(set(train) - set(other)), sorted(set(other) - set(train))
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing from {split}: {missing}")
        if extra:
            parts.append(f"not in train: {extra}")
        raise DataError(
            f"class folders differ between train and {split} in {root} ({'; '.join(parts)}); "
            "every split must have the same class folders."
        )


def _to_samples(tree: dict[str, list[Path]], classes: list[str], groups: dict[Path, str]) -> list[Sample]:
    index = {name: i for i, name in enumerate(classes)}
    return [Sample(p, index[name], groups.get(p)) for name in classes for p in tree.get(name, [])]


def _stratified_holdout(
    samples: list[Sample], classes: list[str], fraction: float, seed: int, root: Path
) -> tuple[list[Sample], list[Sample]]:
    counts = Counter(s.label for s in samples)
    too_small = [classes[c] for c, n in counts.items() if n < 2]
    if too_small:
        raise DataError(
            f"class(es) {too_small} in {root} have fewer than 2 images, so no validation images can be held "
            "out; add images, provide a val/ folder, or train on every image with --val-fraction 0."
        )
    n_val = max(len(classes), round(len(samples) * fraction))
    if len(samples) - n_val < len(classes):
        raise DataError(f"{root} has too few images ({len(samples)}) to hold out a validation split.")
    if any(s.group is not None for s in samples):
        train, val = grouped_holdout(samples, len(classes), fraction, seed)
        _check_grouped_holdout(train, val, classes, root)
    else:
        train, val = train_test_split(
            samples, test_size=n_val, stratify=[s.label for s in samples], random_state=seed
        )
    key = lambda s: (s.label, str(s.path))  # noqa: E731 - keep splits in a stable order
    return sorted(train, key=key), sorted(val, key=key)


def _check_grouped_holdout(train: list[Sample], val: list[Sample], classes: list[str], root: Path) -> None:
    """Whole groups may leave a class out of train (an error: nothing to learn it from) or out of val (a
    warning: val cannot measure it)."""
    no_train = [classes[c] for c in range(len(classes)) if not any(s.label == c for s in train)]
    if no_train:
        raise DataError(f"holding out whole groups (patients) for validation in {root} leaves class(es) {no_train} "
                        "without training images: their images belong to too few groups. Add images of other "
                        "patients, or provide a val/ folder (or split column).")
    if not val:
        raise DataError(f"{root} has too few groups (patients) to hold out a validation split of whole groups; add "
                        "images of other patients, or provide a val/ folder (or split column).")
    no_val = [classes[c] for c in range(len(classes)) if not any(s.label == c for s in val)]
    if no_val:
        log.warning("the group-aware validation split of %s has no images of class(es) %s (too few groups); "
                    "provide a val/ folder to measure them", root, no_val)


def _read_manifest(csv_path: Path) -> list[tuple[Path, str, str | None, str | None]]:
    """(path, label, split, group) rows; paths as tlearn.data.manifest_paths reads them (a relative path that
    resolves outside the CSV's folder is read but warned about, naming its lines)."""
    if not csv_path.is_file():
        raise DataError(f"manifest {csv_path} does not exist.")
    paths = ManifestPaths(csv_path)
    unlabelled: list[int] = []
    with open(csv_path, newline="") as f:
        reader = csv.DictReader(f)
        fields = [c.strip().lower() for c in (reader.fieldnames or [])]
        if "path" not in fields or "label" not in fields:
            raise DataError(f"manifest {csv_path} needs a header with columns path,label (and optionally split, "
                            "group).")
        rows = []
        for line, raw in enumerate(reader, start=2):
            # spreadsheet_plain: a manifest tlearn wrote quotes a cell that starts like a formula (=, -, @ ...)
            row = {k.strip().lower(): spreadsheet_plain(v or "").strip() for k, v in raw.items() if k}
            if not row.get("path"):
                raise DataError(f"{csv_path} line {line}: empty path.")
            if not row.get("label"):  # not labelled yet (a `tlearn select` list half filled in): not a sample
                unlabelled.append(line)
                continue
            path = paths.path(row["path"], line)
            split = row.get("split") or None
            if split is not None and split not in SPLITS:
                raise DataError(f"{csv_path} line {line}: split must be one of {SPLITS}, not {split!r}.")
            rows.append((path, row["label"], split, row.get("group") or None))
    paths.warn()
    if unlabelled:
        log.info("manifest %s: %d row(s) with an empty label are not labelled images and are left out (first: "
                 "line %d); pass the manifest as --unlabeled to let the linear probe use them", csv_path,
                 len(unlabelled), unlabelled[0])
    if not rows:
        raise DataError(f"manifest {csv_path} has no labelled rows" + (
            f" ({len(unlabelled)} row(s) with an empty label: fill in their label column)" if unlabelled else "") + ".")
    return rows


def load_splits(data: str | Path, val_fraction: float = DEFAULT_VAL_FRACTION, seed: int = 0, group_by: str | None = None,
                empty_label: str | None = None, min_classes: int = 2) -> DataSplits:
    """Resolve DATA into train/val/test samples with one shared, sorted class list.

    group_by: a regex that takes each image's group (patient) from its file name where the manifest gives none.
    A multi-label manifest goes to tlearn.data.multilabel, whose empty_label becomes the empty set.
    min_classes: 1 for data that adds to a trained model (`tlearn extend`: one new class is a task).
    """
    root = Path(data).expanduser().resolve()  # absolute: run files and reports work from any folder
    if not root.exists():
        raise DataError(f"data path {root} does not exist.")
    if manifest_kind(root) == TASK_MULTILABEL:
        return load_multilabel_splits(root, val_fraction, seed, empty_label)
    if empty_label is not None:
        raise DataError(f"--empty-label is for multi-label manifests (a `labels` column or 0/1 label columns); "
                        f"{root} has one label per image.")
    skipped: list[SkippedFile] = []
    trees: dict[str, dict[str, list[Path]]] = {}
    groups: dict[Path, str] = {}
    if root.is_file():
        if root.suffix.lower() != ".csv":
            raise DataError(f"{root} is a file but not a .csv manifest; pass a folder or a CSV with path,label.")
        for path, label, split, group in _read_manifest(root):
            trees.setdefault(split or "train", {}).setdefault(label, []).append(path)
            if group:
                groups[path] = group
        if "train" not in trees:
            raise DataError(f"manifest {root} has no train rows.")
    elif (root / "train").is_dir():
        for split in SPLITS:
            if (root / split).is_dir():
                trees[split], split_skipped = read_class_tree(root / split, root)
                skipped += split_skipped
    else:
        trees["train"], skipped = read_class_tree(root)

    classes = sorted(trees["train"])
    if not classes:
        raise DataError(f"{root} has no class folders with images.")
    if len(classes) < min_classes:
        raise DataError(
            f"{root} has a single class ({classes[0]!r}); a classifier needs at least two class folders."
        )
    for split in ("val", "test"):
        if split in trees:
            _check_classes(trees["train"], trees[split], split, root)

    base = root.parent if root.is_file() else root
    listed = {split: _to_samples(trees.get(split, {}), classes, groups) for split in SPLITS}
    every, unmatched = apply_group_regex([s for split in SPLITS for s in listed[split]], group_by, base)
    by_split, start = {}, 0
    for split in SPLITS:
        by_split[split], start = every[start:start + len(listed[split])], start + len(listed[split])
    train, test = by_split["train"], by_split["test"]
    if "val" in trees:
        val = by_split["val"]
        val_source = "val split"
    elif val_fraction <= 0:
        val = []
        val_source = NO_VAL_SOURCE
    else:
        train, val = _stratified_holdout(train, classes, val_fraction, seed, root)
        how = "whole groups, stratified" if any(s.group is not None for s in train) else "stratified"
        val_source = f"{val_fraction:.0%} of train held out ({how}, seed {seed})"
    return DataSplits(str(root), classes, train, val, test, val_source, skipped, group_by, unmatched)


def list_images(path: str | Path) -> list[Path]:
    """Image files given a file or a folder (searched recursively), for prediction."""
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise DataError(f"{path} does not exist; pass an image file or a folder of images.")
    files = sorted(p for p in path.rglob("*") if p.is_file() and is_image_file(p))
    if not files:
        raise DataError(f"{path} contains no image files ({', '.join(sorted({'.jpg', '.png'}))}, ...).")
    return files
