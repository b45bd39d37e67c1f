"""tlearn doctor against planted faults in a temporary copy of a shared set: FLIP of the labels moved at random to
another class folder, and COPIES train images copied into val resized by 0.8 and re-encoded as JPEG q75.
Prints label-issue precision and recall at k = the number flipped, the share of planted copies found, and the
duplicate pairs among distinct images that are neither planted nor found in the untouched set (false pairs).
The copy lives under --work (outside the repository); the set itself is only read.
Usage: python benchmarks/doctor_planted.py ../shared/data/flower_photos [--work /tmp/doctor-planted] [--seed 0]
"""
from __future__ import annotations

import argparse
import itertools
import json
import shutil
import time
from pathlib import Path

import numpy as np
from PIL import Image

from tlearn.data.images import IMAGE_EXTENSIONS, load_rgb
from tlearn.doctor import diagnose

MARKER = ".tlearn-doctor-planted"


def images(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


def plant(src: Path, work: Path, flip: float, copies: int, seed: int) -> tuple[dict, dict]:
    """Copy src to work/data and plant the faults; ({new path: (given, true)}, {copy path: source path})."""
    if work.exists():
        if not (work / MARKER).is_file():
            raise SystemExit(f"{work} exists and is not this script's folder; choose another --work")
        shutil.rmtree(work)
    data = work / "data"
    shutil.copytree(src, data, ignore=shutil.ignore_patterns("unlabeled", "*.md", "*.csv"))
    (work / MARKER).touch()
    rng = np.random.default_rng(seed)
    labelled = [p for p in images(data) if p.relative_to(data).parts[0] in ("train", "val", "test")]
    classes = sorted({p.parent.name for p in labelled})
    flipped = {}
    for i in rng.choice(len(labelled), size=round(flip * len(labelled)), replace=False):
        p = labelled[i]
        new_class = rng.choice([c for c in classes if c != p.parent.name])
        target = p.parent.parent / new_class / f"flipped_{p.name}"
        p.rename(target)
        flipped[str(target)] = (str(new_class), p.parent.name)
    train = [p for p in images(data / "train") if not p.name.startswith("flipped_")]
    planted = {}
    for k, i in enumerate(rng.choice(len(train), size=copies, replace=False)):
        source = train[i]
        img = load_rgb(source)
        img = img.resize((max(8, round(img.width * 0.8)), max(8, round(img.height * 0.8))), Image.Resampling.BICUBIC)
        target = data / "val" / source.parent.name / f"planted_copy_{k}.jpg"
        img.save(target, "JPEG", quality=75)
        planted[str(target)] = str(source)
    return flipped, planted


def pairs(groups: list[dict]) -> set[frozenset]:
    return {frozenset(pair) for g in groups for pair in itertools.combinations(g["paths"], 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("data", type=Path)
    ap.add_argument("--work", type=Path, default=Path("/tmp/doctor-planted"))
    ap.add_argument("--flip", type=float, default=0.05)
    ap.add_argument("--copies", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--backbone", default="efficientnet_lite0")
    ap.add_argument("--rank-by", default="self_confidence")
    args = ap.parse_args()
    src = args.data.resolve()
    work = args.work / src.name
    flipped, planted = plant(src, work, args.flip, args.copies, args.seed)
    data = work / "data"

    start = time.perf_counter()
    report = diagnose(data, args.backbone, ranking=args.rank_by, progress=False)
    seconds = time.perf_counter() - start
    baseline = diagnose(src, args.backbone, ranking=args.rank_by, progress=False)  # what the set holds already

    k = len(flipped)
    ranked = [t["path"] for t in report.label_issues]
    hits = sum(p in flipped for p in ranked[:k])
    hits_all = sum(p in flipped for p in ranked)
    ranked_class = [t["path"] for t in report.label_issues if t["kind"] == "class"]  # without "no class fits"
    hits_class = sum(p in flipped for p in ranked_class[:k])

    def original(path: str) -> str:  # the path in the untouched set
        rel = Path(path).relative_to(data)
        name = rel.name.removeprefix("flipped_")
        for cls in {rel.parts[1], flipped.get(path, ("", ""))[1]} - {""}:
            candidate = src / rel.parts[0] / cls / name
            if candidate.exists():
                return str(candidate)
        return str(src / rel)

    exact_files = {frozenset(g["paths"]) for g in report.duplicates if g["kind"] == "exact"}
    found_pairs = pairs([g for g in report.duplicates if g["kind"] == "near"])
    known = pairs(baseline.duplicates)
    copies_found = sum(any({c, s} <= set(g["paths"]) for g in report.duplicates) for c, s in planted.items())
    planted_pairs = {frozenset(p) for p in planted.items()}
    other = [sorted(p) for p in found_pairs - planted_pairs
             if frozenset(original(q) if q not in planted else q for q in p) not in known
             and not any(q in planted for q in p)]
    near_to_planted_wrong = [sorted(p) for p in found_pairs - planted_pairs if any(q in planted for q in p)]
    result = {
        "data": str(src), "images": sum(report.counts.values()), "flipped": k, "copies": len(planted),
        "label_issues": len(ranked), f"precision_at_{k}": round(hits / k, 3), f"recall_at_{k}": round(hits / k, 3),
        "recall_all_issues": round(hits_all / k, 3), f"precision_at_{k}_class_issues_only": round(hits_class / k, 3),
        "outlier_issues_in_top_k": sum(t["kind"] == "outlier" for t in report.label_issues[:k]), "copies_found": round(copies_found / len(planted), 3),
        "false_pairs_new": len(other), "copy_pairs_with_other_images": len(near_to_planted_wrong),
        "preexisting_groups": len(baseline.duplicates), "exact_groups": len(exact_files),
        "doctor_seconds": round(seconds, 1),
        "false_pair_examples": other[:10] + near_to_planted_wrong[:10],
        "missed_copies": [c for c, s in planted.items()
                          if not any({c, s} <= set(g["paths"]) for g in report.duplicates)],
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
