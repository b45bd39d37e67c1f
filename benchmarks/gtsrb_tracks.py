"""Write a gtsrb_32px manifest whose val split holds out whole tracks, not single frames.

GTSRB training images come in tracks: up to 30 frames of one physical sign, named TRACK_FRAME.png. A val split
drawn image by image (tlearn's --val-fraction) puts frames of the same sign in train and in val, so val
accuracy overstates what the model does on new signs: a linear probe scored 0.824 on such a val split and
0.680 on the official test images. This manifest holds out about --val-fraction of each class's images as whole
tracks, and keeps test/ as the test split.

    python benchmarks/gtsrb_tracks.py [--data ../shared/data/gtsrb_32px] [--out gtsrb_tracks.csv]
    tlearn fit gtsrb_tracks.csv --strategy finetune --image-size 64 ... --out R
"""
from __future__ import annotations

import argparse
import csv
import random
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def track_split(train: Path, val_fraction: float, seed: int) -> dict[Path, str]:
    """file -> train | val, whole tracks at a time, per class."""
    rng = random.Random(seed)
    assignment = {}
    for class_dir in sorted(p for p in train.iterdir() if p.is_dir()):
        tracks = defaultdict(list)
        for f in sorted(class_dir.glob("*.png")):
            tracks[f.name.split("_")[0]].append(f)
        order = sorted(tracks)
        rng.shuffle(order)
        total, held = sum(len(v) for v in tracks.values()), 0
        for track in order:
            split = "val" if held < val_fraction * total and len(order) > 1 else "train"
            held += len(tracks[track]) if split == "val" else 0
            for f in tracks[track]:
                assignment[f] = split
        if all(assignment[f] == "val" for fs in tracks.values() for f in fs):  # keep one track to train on
            for f in tracks[order[-1]]:
                assignment[f] = "train"
    return assignment


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "gtsrb_32px")
    p.add_argument("--out", type=Path, default=Path("gtsrb_tracks.csv"))
    p.add_argument("--val-fraction", type=float, default=0.2)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    rows = [(f, f.parent.name, split) for f, split in track_split(args.data / "train", args.val_fraction,
                                                                 args.seed).items()]
    rows += [(f, f.parent.name, "test") for f in sorted((args.data / "test").glob("*/*.png"))]
    with open(args.out, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "label", "split"])
        w.writerows((str(f.resolve()), label, split) for f, label, split in rows)
    counts = defaultdict(int)
    for _, _, split in rows:
        counts[split] += 1
    print(f"wrote {args.out}: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))


if __name__ == "__main__":
    main()
