"""Does fine-tuning memory grow with the dataset? Peak RSS of `fit --strategy finetune` on 1x, 2x and 4x images.

Each size runs in its own process with an empty cache (so the decode is included), one epoch of the default
finetune recipe on chest X-ray train images (224 x 224 JPEGs; a CSV manifest picks the first N of each class,
the same 100 val images for every size). Prints peak resident memory (process + its data-loading workers),
the decoded-image file on disk, and the ratio of each peak to the smallest run's. The decoded images live in a
file read a row at a time (not through the mapping, whose pages would stay resident): the peak should stay flat
while the file grows.

    python benchmarks/train_memory.py [--data ../shared/data/chest_xray_pneumonia] [--sizes 250 500 1000]
"""
from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from finetune_speed import peak_rss_mb  # process + workers, as the speed benchmark measures it

ROOT = Path(__file__).resolve().parents[1]


def write_manifest(data: Path, n_train: int, n_val: int, path: Path) -> None:
    """First n_train // classes images of each train class, first n_val // classes of each val class."""
    rows = []
    for split, n in (("train", n_train), ("val", n_val)):
        classes = sorted(p for p in (data / split).iterdir() if p.is_dir())
        for class_dir in classes:
            files = sorted(class_dir.iterdir())[: n // len(classes)]
            rows += [(str(f), class_dir.name, split) for f in files]
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "label", "split"])
        writer.writerows(rows)


def child(manifest: str, cache: str, out: str) -> dict:
    from tlearn.fitting import fit

    start = time.perf_counter()
    run = fit(manifest, out, strategy="finetune", epochs=1, cache_dir=cache, progress=False)
    decoded = sum(p.stat().st_size for p in Path(cache).rglob("*") if p.is_file() and "decoded" in str(p))
    return {"seconds": time.perf_counter() - start, "peak_rss_mb": peak_rss_mb(), "decoded_mb": decoded / 1e6,
            "val_accuracy": run.metrics["val"]["accuracy"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "chest_xray_pneumonia")
    ap.add_argument("--sizes", type=int, nargs="+", default=[250, 500, 1000])
    ap.add_argument("--val", type=int, default=100)
    ap.add_argument("--child", nargs=3, metavar=("MANIFEST", "CACHE", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(*args.child)))
        return

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            manifest = Path(tmp) / f"train{n}.csv"
            write_manifest(args.data, n, args.val, manifest)
            cmd = [sys.executable, __file__, "--child", str(manifest), f"{tmp}/cache{n}", f"{tmp}/run{n}"]
            proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
            if proc.returncode != 0:
                raise SystemExit(f"{n} images failed:\n{proc.stderr[-3000:]}")
            rows.append({"train_images": n, **json.loads(proc.stdout.strip().splitlines()[-1])})
            print(json.dumps(rows[-1]), flush=True)
    base = rows[0]["peak_rss_mb"]
    print(f"\n{'train images':>12} {'peak RSS MB':>12} {'x smallest':>11} {'decoded file MB':>16} {'seconds':>8}")
    for r in rows:
        print(f"{r['train_images']:>12} {r['peak_rss_mb']:>12.0f} {r['peak_rss_mb'] / base:>11.2f} "
              f"{r['decoded_mb']:>16.0f} {r['seconds']:>8.1f}")


if __name__ == "__main__":
    main()
