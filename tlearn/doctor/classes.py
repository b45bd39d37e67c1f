"""How the images spread over classes and splits: counts, imbalance, classes a split lacks or barely has."""
from __future__ import annotations

from collections import Counter

from ..data.layout import SPLITS, DataSplits

FEW_IMAGES = 5  # a class with fewer images than this in a split is measured on too few to say much


def class_counts(splits: DataSplits, usable: set[str] | None = None) -> dict:
    """Images per class and split (only those in `usable` when given: unreadable files do not count), the train
    imbalance (largest / smallest class) and the classes a split lacks or barely has."""
    present = [s for s in SPLITS if splits.split(s)]
    counts = {s: Counter(x.label for x in splits.split(s) if usable is None or str(x.path) in usable)
              for s in present}
    rows = [{"class": name, **{s: counts[s].get(k, 0) for s in present}} for k, name in enumerate(splits.classes)]
    missing = [{"class": r["class"], "split": s} for r in rows for s in present if r[s] == 0]
    few = [{"class": r["class"], "split": s, "images": r[s]} for r in rows for s in present if 0 < r[s] < FEW_IMAGES]
    train = [r["train"] for r in rows if r.get("train")]
    imbalance = max(train) / min(train) if train else None
    return {"splits": present, "rows": rows, "imbalance": round(imbalance, 3) if imbalance else None,
            "missing": missing, "few": few, "val_source": splits.val_source}
