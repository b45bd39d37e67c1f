"""Model selection without training: do transferability scores rank sources the way their accuracy does?

    python benchmarks/rank_sources.py [--targets hymenoptera,flower_photos,...] \
        [--sources efficientnet_lite0,efficientnet_lite1,efficientnet_lite2,RUN_DIR,...] [--json OUT.json] \
        [--finetune-targets hymenoptera --finetune-out DIR]

For every target (a set under --data-root) and source: each metric's score on the train split (tlearn.rank,
through the shared feature cache), and the ground truth, the default linear probe's val and test accuracy
(LinearProbe on the same train features). Per target and metric: Kendall tau and weighted tau
(scipy.stats.weightedtau, top ranks weigh more) between score and val accuracy (and test accuracy where the set
has test/), whether the metric's top pick is within 1 point of the best source, and the seconds of ranking
(features + metric) against those of the ground truth (features of val/test + the probe's fit). Then the mean
over targets per metric. With 3 sources a tau can only be -1, -1/3, 1/3 or 1: read it with that in mind.
A run-directory source trained on a target's own images is left out for that target (it would rank itself
first). --finetune-targets adds, for those (small) targets, each source's fine-tuned val/test accuracy at the
finetune defaults as a second ground truth.
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import os
import time
from pathlib import Path

import numpy as np
import yaml

import tlearn
from scipy.stats import kendalltau, weightedtau

from tlearn.data.layout import load_splits
from tlearn.features.extract import extract_features
from tlearn.rank.metrics import METRICS
from tlearn.rank.ranking import rank_sources
from tlearn.rank.sources import describe, load_source
from tlearn.device import settle_runtime
from tlearn.strategies.linear_probe import LinearProbe

TARGETS = "hymenoptera,flower_photos,chest_xray_pneumonia,gtsrb_32px,pneumoniamnist"
SOURCES = "efficientnet_lite0,efficientnet_lite1,efficientnet_lite2"
DATA_ROOT = Path(os.environ.get("TLEARN_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def ground_truth(splits, name: str, seed: int) -> dict:
    """The default linear probe's val/test accuracy for one source (train features come from the cache)."""
    start = time.perf_counter()
    source = load_source(name)
    device, precision, cache = settle_runtime("auto", "auto", None)
    feats = {split: extract_features(source.backbone, splits.split(split), source.info.data_config,
                                     precision=precision, device=device, cache_dir=cache, progress=False)
             for split in ("train", "val", "test") if splits.split(split)}
    probe = LinearProbe(seed=seed).fit(feats["train"].features, feats["train"].labels, len(splits.classes))
    out = {f"{split}_accuracy": float((probe.predict(f.features) == f.labels).mean())
           for split, f in feats.items() if split != "train"}
    out["seconds"] = time.perf_counter() - start
    return out


def finetuned_truth(target: Path, name: str, seed: int, out: Path) -> dict:
    """Val/test accuracy of `tlearn fit TARGET --backbone SOURCE --strategy finetune` at the defaults."""
    start = time.perf_counter()
    run = tlearn.fit(target, out, backbone=name, strategy="finetune", seed=seed, progress=False)
    m = run.metrics
    return {"val_accuracy": m["val"]["accuracy"], "test_accuracy": (m.get("test") or {}).get("accuracy"),
            "seconds": time.perf_counter() - start}


def _tau(scores: list[float], truth: list[float]) -> tuple[float, float]:
    if len(set(truth)) < 2 or len(set(scores)) < 2:
        return math.nan, math.nan
    return float(kendalltau(scores, truth).statistic), float(weightedtau(scores, truth).statistic)


def trained_on(source: str) -> Path | None:
    """The folder a run-directory source was trained on (its data, or the first image of its manifest)."""
    config = Path(source) / "config.yaml"
    if not config.is_file():
        return None
    data = Path(yaml.safe_load(config.read_text())["fit"]["data"])
    if data.is_file():
        with data.open(newline="") as f:
            data = Path(next(csv.DictReader(f))["path"])
    return data.resolve()


def own_target(source: str, target: Path) -> bool:
    """A source fine-tuned on this target's own train split would rank itself first: it is left out there."""
    data = trained_on(source)
    return data is not None and (data == target.resolve() or target.resolve() in data.parents)


def evaluate_target(target: Path, sources: list[str], seed: int, finetune_dir: Path | None = None) -> dict:
    left_out = [s for s in sources if own_target(s, target)]
    sources = [s for s in sources if s not in left_out]
    splits = load_splits(target, 0.2, seed)
    t0 = time.perf_counter()
    ranking = rank_sources(splits, sources, list(METRICS), seed=seed, progress=False)
    rank_seconds = time.perf_counter() - t0
    truth = {name: ground_truth(splits, name, seed) for name in sources}
    finetuned = {name: finetuned_truth(target, name, seed, finetune_dir / f"{target.name}-{i}")
                 for i, name in enumerate(sources)} if finetune_dir else {}
    result = {"target": target.name, "n_train": ranking.n_train, "classes": len(splits.classes),
              "sources": sources, "left_out": left_out,
              "rank_seconds": rank_seconds, "truth": truth, "finetuned": finetuned, "metrics": {}}
    grounds = [("val", truth, "val_accuracy"), ("test", truth, "test_accuracy")]
    if finetuned:
        grounds += [("ft_val", finetuned, "val_accuracy"), ("ft_test", finetuned, "test_accuracy")]
    for metric in METRICS:
        rows = {r.source: r for r in ranking.rows if r.metric == metric}
        scores = [rows[s].score for s in sources]
        top = max(sources, key=lambda s: rows[s].score)
        entry = {"scores": dict(zip(sources, scores)), "top": top,
                 "metric_seconds": sum(rows[s].metric_seconds for s in sources),
                 "feature_seconds": sum(rows[s].feature_seconds for s in sources)}
        for split, ground, key in grounds:
            if all(ground[s].get(key) is not None for s in sources):
                acc = [ground[s][key] for s in sources]
                entry[f"tau_{split}"], entry[f"wtau_{split}"] = _tau(scores, acc)
                entry[f"top1_within_1pt_{split}"] = bool(ground[top][key] >= max(acc) - 0.01)
        result["metrics"][metric] = entry
    return result


def _f(x, digits: int = 2) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


GROUNDS = {"val": "probe val", "test": "probe test", "ft_val": "fine-tuned val", "ft_test": "fine-tuned test"}


def print_tables(results: list[dict]) -> None:
    for r in results:
        print(f"\n### {r['target']} ({r['classes']} classes, {r['n_train']} train images scored; ranking "
              f"{r['rank_seconds']:.0f} s for all 4 metrics)\n")
        if r["left_out"]:
            print("Left out (trained on this set): " + ", ".join(describe(s) for s in r["left_out"]) + "\n")
        ft = r["finetuned"]
        print("| source | " + " | ".join(METRICS) + " | probe val | probe test | probe s |"
              + (" fine-tuned val | fine-tuned test | fine-tune s |" if ft else ""))
        print("|---" * (len(METRICS) + 4 + (3 if ft else 0)) + "|")
        for s in r["sources"]:
            t = r["truth"][s]
            line = (f"| {describe(s)} | " + " | ".join(_f(r["metrics"][m]["scores"][s], 4) for m in METRICS)
                    + f" | {_f(t.get('val_accuracy'), 4)} | {_f(t.get('test_accuracy'), 4)} | {t['seconds']:.0f} |")
            if ft:
                f = ft[s]
                line += f" {_f(f['val_accuracy'], 4)} | {_f(f['test_accuracy'], 4)} | {f['seconds']:.0f} |"
            print(line)
        grounds = [g for g in GROUNDS if f"tau_{g}" in next(iter(r["metrics"].values()))]
        print("\n| metric | top pick | " + " | ".join(f"tau / weighted tau / top-1 within 1 pt ({GROUNDS[g]})"
                                                    for g in grounds) + " | metric s |")
        print("|---" * (3 + len(grounds)) + "|")
        for m, e in r["metrics"].items():
            cells = [f"{_f(e[f'tau_{g}'])} / {_f(e[f'wtau_{g}'])} / {'yes' if e[f'top1_within_1pt_{g}'] else 'no'}"
                     for g in grounds]
            print(f"| {m} | {describe(e['top'])} | " + " | ".join(cells) + f" | {e['metric_seconds']:.2f} |")
    print("\n### Mean over targets\n")
    print("| metric | ground truth | targets | mean tau | mean weighted tau | top-1 within 1 pt |")
    print("|---" * 6 + "|")
    for m in METRICS:
        for g, label in GROUNDS.items():
            es = [r["metrics"][m] for r in results if f"tau_{g}" in r["metrics"][m]]
            if not es:
                continue
            taus = [e[f"tau_{g}"] for e in es if not math.isnan(e[f"tau_{g}"])]
            wtaus = [e[f"wtau_{g}"] for e in es if not math.isnan(e[f"wtau_{g}"])]
            hits = sum(e[f"top1_within_1pt_{g}"] for e in es)
            print(f"| {m} | {label} | {len(es)} | {_f(float(np.mean(taus))) if taus else '–'} | "
                  f"{_f(float(np.mean(wtaus))) if wtaus else '–'} | {hits}/{len(es)} |")
    rank_s = sum(r["rank_seconds"] for r in results)
    truth_s = sum(t["seconds"] for r in results for t in r["truth"].values())
    ft_s = sum(t["seconds"] for r in results for t in r["finetuned"].values())
    print(f"\nranking (features + 4 metrics, all targets): {rank_s:.0f} s; ground truth (val/test features + "
          f"linear probes, train features reused from the cache): {truth_s:.0f} s"
          + (f"; fine-tuning every source: {ft_s:.0f} s" if ft_s else ""))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--targets", default=TARGETS, help="comma-separated set names under --data-root")
    p.add_argument("--sources", default=SOURCES, help="comma-separated sources (registry names, run directories)")
    p.add_argument("--data-root", default=str(DATA_ROOT))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=None, help="also write all figures to this file")
    p.add_argument("--finetune-targets", default="", help="targets where each source is also fine-tuned")
    p.add_argument("--finetune-out", default="rank-finetune-runs", help="where those runs go")
    args = p.parse_args()
    finetune = {t for t in args.finetune_targets.split(",") if t}
    sources = [s for s in args.sources.split(",") if s]
    results = []
    for name in [t for t in args.targets.split(",") if t]:
        print(f"[{time.strftime('%H:%M:%S')}] {name} ...", flush=True)
        results.append(evaluate_target(Path(args.data_root) / name, sources, args.seed,
                                       Path(args.finetune_out) if name in finetune else None))
        if args.json:  # after each target, so an interrupted run keeps what it measured
            Path(args.json).write_text(json.dumps(results, indent=2, default=float))
    print_tables(results)


if __name__ == "__main__":
    main()
