"""A set with planted cross-split copies, to see the leakage warning and the held-out figures without the copies.

hymenoptera's val/ is halved into val and test; 30 train images are copied into test under their own class: 16
byte for byte, 14 resized to 60% and re-encoded as JPEG quality 70. Then:

    python benchmarks/planted_copies.py --out planted
    tlearn fit planted --out R --json     # metrics: test accuracy on all images and without the copies
"""
from __future__ import annotations

import argparse
import random
import shutil
from pathlib import Path

from PIL import Image

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "hymenoptera"
PER_CLASS = 15  # train images planted into test per class
EXACT = 8  # of which byte-identical; the rest are resized, re-encoded near-copies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="hymenoptera (train/ and val/ class folders)")
    parser.add_argument("--out", type=Path, required=True, help="folder to create (must not exist)")
    args = parser.parse_args()
    if args.out.exists():
        parser.error(f"{args.out} exists; choose a new folder")
    rng = random.Random(0)
    for cls in sorted(p.name for p in (args.data / "train").iterdir() if p.is_dir()):
        train = sorted((args.data / "train" / cls).iterdir())
        val = sorted((args.data / "val" / cls).iterdir())
        for split in ("train", "val", "test"):
            (args.out / split / cls).mkdir(parents=True)
        for f in train:
            shutil.copyfile(f, args.out / "train" / cls / f.name)
        for i, f in enumerate(val):
            shutil.copyfile(f, args.out / ("val" if i % 2 == 0 else "test") / cls / f.name)
        for k, f in enumerate(rng.sample(train, PER_CLASS)):
            if k < EXACT:
                shutil.copyfile(f, args.out / "test" / cls / f"copy_{f.name}")
            else:
                with Image.open(f) as img:
                    small = img.convert("RGB").resize((int(img.width * 0.6), int(img.height * 0.6)))
                small.save(args.out / "test" / cls / f"near_{f.stem}.jpg", quality=70)
    counts = {s: sum(1 for p in (args.out / s).rglob("*") if p.is_file()) for s in ("train", "val", "test")}
    print(f"planted set {args.out}: {counts}")


if __name__ == "__main__":
    main()
