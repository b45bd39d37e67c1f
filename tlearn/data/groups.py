"""Groups (patients, subjects): images that must stay on one side of every split.

A sample's group comes from a manifest's `group` column, or from `--group-by REGEX` searched in its file name
(or, when the regex contains '/', in its path relative to the data folder): the first capture group, or the whole
match. Held-out validation splits are drawn group by group (grouped_holdout), and groups shared by two given
splits are found by shared_groups, so val/test never measure a patient the model trained on.
"""
from __future__ import annotations

import logging
import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..errors import DataError

log = logging.getLogger("tlearn")

LISTED = 50  # shared groups written out in full; the count covers all of them
# chest_xray_pneumonia: person1287_virus_2210.jpeg -> person1287, IM-0115-0001.jpeg -> IM-0115,
# NORMAL2-IM-1427-0001.jpeg -> NORMAL2-IM-1427 (the documented example in docs/guide/medical.md)
CHEST_XRAY_GROUP_BY = r"^(person\d+|(?:NORMAL2-)?IM-\d+)"


def compile_group_regex(pattern: str) -> re.Pattern:
    """The --group-by regex compiled, or a DataError saying what is wrong with it."""
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise DataError(f"--group-by {pattern!r} is not a valid regular expression ({exc}); e.g. "
                        f"--group-by '{CHEST_XRAY_GROUP_BY}' takes person1287 from person1287_virus_2210.jpeg.")


def group_of(regex: re.Pattern, path: Path, root: Path) -> str | None:
    """The group the regex finds in the path's file name (or its path relative to root, when the regex has a
    '/'): the first capture group, or the whole match; None when it does not match."""
    if "/" in regex.pattern:
        try:
            text = path.relative_to(root).as_posix()
        except ValueError:
            text = path.as_posix()
    else:
        text = path.name
    match = regex.search(text)
    if match is None:
        return None
    value = match.group(1) if regex.groups else match.group(0)
    return value or None


def apply_group_regex(samples: Sequence, pattern: str | None, root: Path, required: bool = True) -> tuple[list, int]:
    """Samples with their group filled from the regex where they have none; and how many matched nothing (these
    stay without a group: each image its own unit). A regex that matches no name at all is an error when
    required (training data), a note otherwise (a run's regex on other data at evaluation)."""
    if not pattern:
        return list(samples), 0
    regex = compile_group_regex(pattern)
    out, unmatched = [], []
    for s in samples:
        if s.group is None:
            g = group_of(regex, Path(s.path), root)
            if g is None:
                unmatched.append(s.path)
            else:
                s = replace(s, group=g)
        out.append(s)
    if unmatched and len(unmatched) == sum(1 for s in samples if s.group is None):
        if not required:
            log.info("--group-by %r matches no image name under %s: images are resampled one by one", pattern, root)
            return out, len(unmatched)
        raise DataError(f"--group-by {pattern!r} matches none of the {len(unmatched)} image names under {root} "
                        f"(e.g. {Path(unmatched[0]).name}); it is searched in each file name (in the path "
                        "relative to the data folder when it contains '/'). Fix the regex, e.g. "
                        f"'{CHEST_XRAY_GROUP_BY}'.")
    if unmatched:
        log.warning("--group-by %r matched nothing in %d image name(s), e.g. %s; each of these is its own group",
                    pattern, len(unmatched), ", ".join(Path(p).name for p in unmatched[:3]))
    return out, len(unmatched)


def unit_ids(groups: Sequence[str | None]) -> np.ndarray:
    """An integer per sample: equal for samples of one group; a sample without a group is its own unit."""
    keys = [("g", g) if g is not None else ("i", i) for i, g in enumerate(groups)]
    index: dict = {}
    return np.array([index.setdefault(k, len(index)) for k in keys], dtype=np.int64)


def grouped_holdout(samples: Sequence, num_classes: int, fraction: float, seed: int) -> tuple[list, list]:
    """Split samples into (train, val) with every group on one side, val about `fraction` of the images and
    stratified as far as whole groups allow.

    Groups are visited in a seeded random order; each joins val when that brings val's per-class counts closer
    (in total absolute difference) to fraction x each class's count, so val is a random draw of whole groups.
    """
    units = unit_ids([s.group for s in samples])
    n_units = int(units.max()) + 1 if len(units) else 0
    labels = np.array([s.label for s in samples], dtype=np.int64)
    counts = np.zeros((n_units, num_classes), dtype=np.int64)
    np.add.at(counts, (units, labels), 1)
    target = fraction * counts.sum(0)
    in_val = np.zeros(n_units, dtype=bool)
    current = np.zeros(num_classes, dtype=np.float64)
    for u in np.random.default_rng(seed).permutation(n_units):
        gain = np.abs(current - target).sum() - np.abs(current + counts[u] - target).sum()
        if gain > 0:
            in_val[u] = True
            current += counts[u]
    train = [s for s, u in zip(samples, units) if not in_val[u]]
    val = [s for s, u in zip(samples, units) if in_val[u]]
    return train, val


def grouped_subsets(train: Sequence, fractions: Sequence[float], seed: int, min_per_class: int,
                    class_count) -> dict[float, list]:
    """fraction -> whole-group training subset: nested across fractions and stratified by each group's majority
    class. Within a class, groups are shuffled once; a fraction takes groups in that order until it holds
    class_count(n_class, fraction, min_per_class) images of that class."""
    samples = sorted(train, key=lambda s: (s.label, str(s.path)))
    units = unit_ids([s.group for s in samples])
    members: dict[int, list] = defaultdict(list)
    for s, u in zip(samples, units):
        members[int(u)].append(s)
    by_class: dict[int, list[int]] = defaultdict(list)
    for u, items in sorted(members.items()):
        by_class[min(Counter(s.label for s in items).most_common(), key=lambda t: (-t[1], t[0]))[0]].append(u)
    rng = np.random.default_rng(seed)
    order = {c: [us[i] for i in rng.permutation(len(us))] for c, us in sorted(by_class.items())}
    out: dict[float, list] = {}
    for f in fractions:
        chosen: list = []
        for c, us in order.items():
            need = class_count(sum(len(members[u]) for u in us), f, min_per_class)
            taken = 0
            for u in us:
                if taken >= need:
                    break
                chosen += members[u]
                taken += len(members[u])
        out[f] = chosen
    return out


def shared_groups(splits_by_name: dict[str, Sequence]) -> list[dict]:
    """Groups found in more than one split: [{"group", "splits": {split: [paths]}}], by group name."""
    where: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for name, samples in splits_by_name.items():
        for s in samples:
            if s.group is not None:
                where[s.group][name].append(str(s.path))
    return [{"group": g, "splits": {k: v for k, v in by_split.items()}}
            for g, by_split in sorted(where.items()) if len(by_split) > 1]


def shared_groups_text(shared: list[dict], shown: int = 10) -> str:
    """The warning (or --strict error) that names the groups shared by splits and their files."""
    lines = [f"{len(shared)} group(s) (patients) appear in more than one split, so val/test figures are "
             "optimistic: they measure patients the model trained on (train) or was chosen on (val):"]
    for item in shared[:shown]:
        parts = []
        for split, paths in item["splits"].items():
            more = f" (+{len(paths) - 2} more)" if len(paths) > 2 else ""
            parts.append(f"{split}: {', '.join(paths[:2])}{more}")
        lines.append(f"  {item['group']}: " + "  |  ".join(parts))
    if len(shared) > shown:
        lines.append(f"  ... and {len(shared) - shown} more (listed in metrics.json under 'groups').")
    return "\n".join(lines)


def groups_record(splits_by_name: dict[str, Sequence], group_by: str | None, unmatched: int,
                  shared: list[dict]) -> dict:
    """What a run records about its groups (metrics.json 'groups')."""
    return {
        "group_by": group_by,
        "counts": {name: len({s.group for s in samples if s.group is not None})
                   for name, samples in splits_by_name.items() if samples},
        "ungrouped": {name: sum(1 for s in samples if s.group is None)
                      for name, samples in splits_by_name.items() if samples},
        "unmatched": unmatched,
        "shared_count": len(shared),
        "shared": shared[:LISTED],
    }
