"""What choosing the linear probe's treatment and C on a stratified sample costs: the probe with its choice made
by cross-validation on every training image against the default (a sample of CV_SAMPLE images when train has
more, then one fit on all), on the same features; val and test accuracy and seconds.

Usage: python benchmarks/probe_sample.py DATA [DATA ...] [--image-size 64] [--cache-dir DIR]
  DATA: a data folder (e.g. ../shared/data/pneumoniamnist, or a pool of benchmarks/scale_pools.py)
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np

from tlearn.data.layout import load_splits
from tlearn.device import settle_runtime
from tlearn.features.extract import extract_features
from tlearn.runs.source import load_source
from tlearn.strategies.linear_probe import CV_SAMPLE, LinearProbe


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", nargs="+")
    ap.add_argument("--image-size", type=int, default=64)
    ap.add_argument("--cache-dir")
    args = ap.parse_args()
    device, precision, cache = settle_runtime("auto", "auto", args.cache_dir)
    module, info = load_source("efficientnet_lite0", image_size=args.image_size)
    for data in args.data:
        splits = load_splits(data, 0.2, 0)
        fs = {name: extract_features(module, splits.split(name), info.data_config, precision=precision,
                                     device=device, cache_dir=cache, progress=False)
              for name in ("train", "val", "test") if splits.split(name)}
        row = {"data": data, "train": len(fs["train"].labels), "cv_sample": CV_SAMPLE}
        for label, sample in (("all", None), ("sampled", CV_SAMPLE)):
            t = time.perf_counter()
            probe = LinearProbe(cv_sample=sample).fit(fs["train"].features, fs["train"].labels, len(splits.classes))
            row[label] = {"seconds": round(time.perf_counter() - t, 1), "cv_rows": probe.cv_rows_,
                          "treatment": probe.treatment, "C": probe.C_,
                          **{split: round(float(np.mean(probe.predict(f.features) == f.labels)), 4)
                             for split, f in fs.items() if split != "train"}}
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
