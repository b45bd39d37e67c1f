"""Pools of n real-looking images for the scaling benchmark (benchmarks/scale.py), built from the shared
flower photos: random crops (30-100% of the area, aspect 3:4 to 4:3), random mirror, resized to 64-96 px and
re-encoded as JPEG at quality 70-95; each crop keeps its photo's class.

Layout of a pool (outside the repository; reused when its .complete marker is present):
  ROOT/pool-<n>/{train,val,test}/<class>/<photo>-<k>.jpg   80% / 10% / 10% of n
  ROOT/pool-<n>-unlabeled/<photo>-<k>.jpg                  n/10 crops of the unlabeled photos (for predict)
Train crops come from flower_photos' train and val photos, val crops from half of its test photos, test crops
from the other half, so no photo is cropped into two splits (the crops of one photo within a split are near
copies of each other, as the frames of one scene are in a real archive).

Usage: python benchmarks/scale_pools.py N [N ...] [--root /work/scale-data]
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from PIL import Image

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "flower_photos"
ROOT = Path(__file__).resolve().parents[2] / "scale-data"
SOURCE_SIDE = 256  # photos are decoded once at about this size (JPEG draft) and kept in memory
SHARES = {"train": 0.8, "val": 0.1, "test": 0.1}
SIZES = (64, 96)
QUALITY = (70, 95)


def _decode(path: Path) -> Image.Image:
    img = Image.open(path)
    img.draft("RGB", (SOURCE_SIDE, SOURCE_SIDE))
    img = img.convert("RGB")
    img.thumbnail((SOURCE_SIDE * 2, SOURCE_SIDE * 2))
    return img


def sources() -> dict[str, list[tuple[str, str, Image.Image]]]:
    """split -> [(class, photo stem, decoded photo)]; unlabeled photos have class ''."""
    def labelled(folder: Path) -> list[tuple[str, Path]]:
        return [(c.name, p) for c in sorted(folder.iterdir()) if c.is_dir() for p in sorted(c.iterdir())
                if p.suffix.lower() in (".jpg", ".jpeg", ".png")]

    train = labelled(DATA / "train") + labelled(DATA / "val")
    held = labelled(DATA / "test")
    val, test = held[0::2], held[1::2]  # alternate photos of each class
    unlabeled = [("", p) for p in sorted((DATA / "unlabeled").rglob("*")) if p.suffix.lower() in (".jpg", ".jpeg")]
    return {split: [(c, p.stem, _decode(p)) for c, p in items]
            for split, items in (("train", train), ("val", val), ("test", test), ("unlabeled", unlabeled))}


def crop(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    w, h = img.size
    area = w * h * rng.uniform(0.3, 1.0)
    aspect = np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))
    cw, ch = min(w, int(round(np.sqrt(area * aspect)))), min(h, int(round(np.sqrt(area / aspect))))
    x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    out = img.crop((x, y, x + cw, y + ch))
    if rng.random() < 0.5:
        out = out.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    side = int(rng.integers(SIZES[0], SIZES[1] + 1))
    scale = side / min(cw, ch)
    return out.resize((max(1, round(cw * scale)), max(1, round(ch * scale))), Image.Resampling.BILINEAR)


def write(items, count: int, folder: Path, rng: np.random.Generator, by_class: bool) -> None:
    order = rng.permutation(len(items))  # every photo once per round, so a small pool still has every class
    for k in range(count):
        cls, stem, img = items[order[k % len(items)]]
        target = folder / cls if by_class else folder
        target.mkdir(parents=True, exist_ok=True)
        crop(img, rng).save(target / f"{stem}-{k:06d}.jpg", "JPEG", quality=int(rng.integers(*QUALITY)))


def build(n: int, root: Path = ROOT, photos=None) -> tuple[Path, Path]:
    """(pool folder, unlabeled folder) of n images, built unless already complete."""
    pool, unlabeled = root / f"pool-{n}", root / f"pool-{n}-unlabeled"
    if (pool / ".complete").exists() and (unlabeled / ".complete").exists():
        return pool, unlabeled
    if pool.exists() or unlabeled.exists():
        raise SystemExit(f"{pool} or {unlabeled} exists without .complete (an interrupted build?): "
                         "remove them and run again")
    photos = photos or sources()
    rng = np.random.default_rng(n)
    for split, share in SHARES.items():
        write(photos[split], int(round(n * share)), pool / split, rng, by_class=True)
    write(photos["unlabeled"], n // 10, unlabeled, rng, by_class=False)
    (pool / ".complete").touch()
    (unlabeled / ".complete").touch()
    return pool, unlabeled


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("n", type=int, nargs="+")
    ap.add_argument("--root", type=Path, default=ROOT)
    args = ap.parse_args()
    photos = None
    for n in args.n:
        t = time.perf_counter()
        if not ((args.root / f"pool-{n}" / ".complete").exists()):
            photos = photos or sources()
        pool, _ = build(n, args.root, photos)
        print(f"{pool}: {time.perf_counter() - t:.1f}s")


if __name__ == "__main__":
    main()
