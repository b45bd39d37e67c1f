"""Leakage check on each shared set: seconds (cold cache, then warm), findings, and validation of the near rule:
(a) a copy resized to half and re-encoded as JPEG q70 (and one re-encoded at full size) must be found among train;
(b) share of distinct same-class train images that the rule flags against the rest of their class.
Usage: python benchmarks/leakage_check.py [SET ...]   (sets under ../shared/data; default: the five image sets)
"""
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from tlearn.data.layout import load_splits
from tlearn.data.leakage import (check_leakage, thumbnails, thumbnail, phash, standardized, closest_copies, is_near,
                                 NEAR_BITS)
from tlearn.data.images import load_rgb
from tlearn import hashing

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def copy_of(path, scale, folder):
    """Thumbnail (as the check decodes it) of the image resized by `scale` and re-encoded as JPEG q70."""
    img = load_rgb(path)
    if scale != 1:
        img = img.resize((max(8, round(img.width * scale)), max(8, round(img.height * scale))),
                         Image.Resampling.BILINEAR)
    out = Path(folder) / "copy.jpg"
    img.save(out, "JPEG", quality=70)
    return thumbnail(load_rgb(out, 64))


SETS = sys.argv[1:] or ["hymenoptera", "flower_photos", "chest_xray_pneumonia", "pneumoniamnist", "gtsrb_32px"]
for name in SETS:
    splits = load_splits(DATA / name)
    cache = tempfile.mkdtemp()
    hashing._FILE_DIGESTS.clear()
    t = time.perf_counter(); r = check_leakage(splits, cache); cold = time.perf_counter() - t
    hashing._FILE_DIGESTS.clear()
    t = time.perf_counter(); check_leakage(splits, cache); warm = time.perf_counter() - t
    n = sum(splits.counts().values())
    by = {}
    for p in r.near:
        by[tuple(p["splits"])] = by.get(tuple(p["splits"]), 0) + 1
    print(f"== {name}: {splits.counts()} ({splits.val_source}) n={n}; cold cache {cold:.2f}s, warm {warm:.2f}s; "
          f"exact {r.exact_count}, near {r.near_count} {by}, label conflicts {len(r.label_conflicts)}, unreadable {r.unhashed}")
    for g in r.exact[:4]: print("   exact", list(zip(g["splits"], [p.split(name + '/')[-1] for p in g["paths"]])))
    for p in r.near[:4]: print(f"   near corr {p['correlation']} bits {p['hash_bits']}", [q.split(name + '/')[-1] for q in p["paths"]])
    S = splits.train
    d = [hashing.file_digest(s.path) for s in S]
    T = np.stack(thumbnails([s.path for s in S], d, cache)); H, V = phash(T), standardized(T)
    rng = np.random.default_rng(0)
    pick = rng.choice(len(S), min(100, len(S)), replace=False)
    for scale in (0.5, 1.0):
        ct = np.stack([copy_of(S[k].path, scale, cache) for k in pick])
        idx, corr, dist, gap = closest_copies(phash(ct), standardized(ct), H, V, NEAR_BITS)
        found = [i == k and is_near(c, b, g) for i, k, c, b, g in zip(idx, pick, corr, dist, gap)]
        print(f"   copies at scale {scale} + JPEG q70 found: {np.mean(found):.0%}")
    labels = np.array([s.label for s in S]); flagged = 0
    for c in np.unique(labels):
        ids = np.flatnonzero(labels == c)
        for a in ids:
            pool = np.array([b for b in ids if d[b] != d[a]])
            if len(pool) < 2: continue
            i, cc, b, g = closest_copies(H[[a]], V[[a]], H[pool], V[pool], NEAR_BITS)
            flagged += int(i[0] >= 0 and is_near(cc[0], b[0], g[0]))
    print(f"   distinct same-class train images flagged: {flagged}/{len(S)} ({flagged/len(S):.1%})")
    shutil.rmtree(cache)
