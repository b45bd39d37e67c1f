"""Model selection without training: do transferability scores rank sources the way their accuracy does?

    python benchmarks/rank_sources.py [--targets hymenoptera,flower_photos,...] \
        [--sources efficientnet_lite0,efficientnet_lite1,efficientnet_lite2,RUN_DIR,...] [--json OUT.json]

For every target (a set under --data-root) and source: each metric's score on the train split (tlearn.rank,
through the shared feature cache), and the ground truth, the default linear probe's val and test accuracy
(LinearProbe on the same train features). Per target and metric: Kendall tau and weighted tau
(scipy.stats.weightedtau, top ranks weigh more) between score and val accuracy (and test accuracy where the set
has test/), whether the metric's top pick is within 1 point of the best source, and the seconds of ranking
(features + metric) against those of the ground truth (features of val/test + the probe's fit). Then the mean
over targets per metric. With 3 sources a tau can only be -1, -1/3, 1/3 or 1: read it with that in mind.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path

import numpy as np
from scipy.stats import kendalltau, weightedtau

from tlearn.data.layout import load_splits
from tlearn.features.extract import extract_features
from tlearn.rank.metrics import METRICS
from tlearn.rank.ranking import rank_sources
from tlearn.rank.sources import describe, load_source
from tlearn.runs.writer import settle_runtime
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


def _tau(scores: list[float], truth: list[float]) -> tuple[float, float]:
    if len(set(truth)) < 2 or len(set(scores)) < 2:
        return math.nan, math.nan
    return float(kendalltau(scores, truth).statistic), float(weightedtau(scores, truth).statistic)


def evaluate_target(target: Path, sources: list[str], seed: int) -> dict:
    splits = load_splits(target, 0.2, seed)
    t0 = time.perf_counter()
    ranking = rank_sources(splits, sources, list(METRICS), seed=seed, progress=False)
    rank_seconds = time.perf_counter() - t0
    truth = {name: ground_truth(splits, name, seed) for name in sources}
    result = {"target": target.name, "n_train": ranking.n_train, "classes": len(splits.classes),
              "rank_seconds": rank_seconds, "truth": truth, "metrics": {}}
    for metric in METRICS:
        rows = {r.source: r for r in ranking.rows if r.metric == metric}
        scores = [rows[s].score for s in sources]
        top = max(sources, key=lambda s: rows[s].score)
        entry = {"scores": dict(zip(sources, scores)), "top": top,
                 "metric_seconds": sum(rows[s].metric_seconds for s in sources),
                 "feature_seconds": sum(rows[s].feature_seconds for s in sources)}
        for split in ("val", "test"):
            key = f"{split}_accuracy"
            if all(key in truth[s] for s in sources):
                acc = [truth[s][key] for s in sources]
                entry[f"tau_{split}"], entry[f"wtau_{split}"] = _tau(scores, acc)
                entry[f"top1_within_1pt_{split}"] = bool(truth[top][key] >= max(acc) - 0.01)
        result["metrics"][metric] = entry
    return result


def _f(x, digits: int = 2) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def print_tables(results: list[dict], sources: list[str]) -> None:
    for r in results:
        print(f"\n### {r['target']} ({r['classes']} classes, {r['n_train']} train images scored; ranking "
              f"{r['rank_seconds']:.0f} s for all 4 metrics)\n")
        print("| source | " + " | ".join(METRICS) + " | probe val acc | probe test acc | probe s |")
        print("|---" * (len(METRICS) + 4) + "|")
        for s in sources:
            t = r["truth"][s]
            print(f"| {describe(s)} | " + " | ".join(_f(r["metrics"][m]["scores"][s], 4) for m in METRICS)
                  + f" | {_f(t.get('val_accuracy'), 4)} | {_f(t.get('test_accuracy'), 4)} | {t['seconds']:.0f} |")
        print("\n| metric | top pick | tau (val) | weighted tau (val) | top-1 within 1 pt (val) | tau (test) "
              "| weighted tau (test) | top-1 within 1 pt (test) | metric s |")
        print("|---" * 9 + "|")
        for m, e in r["metrics"].items():
            print(f"| {m} | {describe(e['top'])} | {_f(e.get('tau_val'))} | {_f(e.get('wtau_val'))} | "
                  f"{e.get('top1_within_1pt_val', '–')} | {_f(e.get('tau_test'))} | {_f(e.get('wtau_test'))} | "
                  f"{e.get('top1_within_1pt_test', '–')} | {e['metric_seconds']:.2f} |")
    print("\n### Mean over targets\n")
    print("| metric | mean tau (val) | mean weighted tau (val) | top-1 within 1 pt (val) | mean tau (test) "
          "| mean weighted tau (test) | top-1 within 1 pt (test) |")
    print("|---" * 7 + "|")
    for m in METRICS:
        row = [m]
        for split in ("val", "test"):
            es = [r["metrics"][m] for r in results if f"tau_{split}" in r["metrics"][m]]
            taus = [e[f"tau_{split}"] for e in es if not math.isnan(e[f"tau_{split}"])]
            wtaus = [e[f"wtau_{split}"] for e in es if not math.isnan(e[f"wtau_{split}"])]
            hits = sum(e[f"top1_within_1pt_{split}"] for e in es)
            row += [_f(float(np.mean(taus))) if taus else "–", _f(float(np.mean(wtaus))) if wtaus else "–",
                    f"{hits}/{len(es)}"]
        print("| " + " | ".join(row) + " |")
    rank_s = sum(r["rank_seconds"] for r in results)
    truth_s = sum(t["seconds"] for r in results for t in r["truth"].values())
    print(f"\nranking (features + 4 metrics, all targets): {rank_s:.0f} s; ground truth (val/test features + "
          f"linear probes, train features reused from the cache): {truth_s:.0f} s")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--targets", default=TARGETS, help="comma-separated set names under --data-root")
    p.add_argument("--sources", default=SOURCES, help="comma-separated sources (registry names, run directories)")
    p.add_argument("--data-root", default=str(DATA_ROOT))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=None, help="also write all figures to this file")
    args = p.parse_args()
    sources = [s for s in args.sources.split(",") if s]
    results = []
    for name in [t for t in args.targets.split(",") if t]:
        print(f"[{time.strftime('%H:%M:%S')}] {name} ...", flush=True)
        results.append(evaluate_target(Path(args.data_root) / name, sources, args.seed))
        if args.json:  # after each target, so an interrupted run keeps what it measured
            Path(args.json).write_text(json.dumps(results, indent=2, default=float))
    print_tables(results, sources)


if __name__ == "__main__":
    main()
