"""Which feature treatment suits the linear probe? raw, standardized and l2 features, each with C chosen by
cross-validation on train, against the treatment the probe picks itself by that CV (its default).

    python benchmarks/probe_treatments.py DATA [DATA ...] [--backbone efficientnet_lite0] [--image-size N]

Features come through tlearn's cached extraction (the same a `tlearn fit` of DATA reuses). Prints, per data
set and treatment: mean CV log-likelihood on train, val and test accuracy; then the CV's choice. Val and test
are printed for reporting only: the choice uses train alone.
"""
from __future__ import annotations

import argparse
import dataclasses
import time

import torch

from tlearn.backbones.model import load_backbone
from tlearn.data.layout import load_splits
from tlearn.device import resolve_precision
from tlearn.features.extract import extract_features
from tlearn.strategies.linear_probe import FEATURE_TREATMENTS, LinearProbe


def measure(data: str, backbone: str, image_size: int | None) -> None:
    splits = load_splits(data)
    module, info = load_backbone(backbone)
    config = info.data_config.with_size(image_size) if image_size else info.data_config
    precision = resolve_precision("auto", torch.device("cpu"))
    feats = {}
    for split in ("train", "val", "test"):
        if splits.split(split):
            feats[split] = extract_features(module, splits.split(split), config, precision=precision, device="cpu",
                                            progress=False, desc=split)
    tr = feats["train"]
    print(f"\n{data}: {len(splits.classes)} classes, train {len(tr.labels)}, "
          + ", ".join(f"{s} {len(f.labels)}" for s, f in feats.items() if s != "train") + f", {config.input_size} px")
    print(f"{'treatment':<13} {'CV loglik':>9} {'C':>8} " + " ".join(f"{s + ' acc':>9}" for s in feats if s != "train")
          + f" {'seconds':>8}")
    for name in FEATURE_TREATMENTS:
        start = time.perf_counter()
        probe = LinearProbe(features=name).fit(tr.features, tr.labels, len(splits.classes))
        seconds = time.perf_counter() - start
        accs = [float((probe.predict(f.features) == f.labels).mean()) for s, f in feats.items() if s != "train"]
        print(f"{name:<13} {probe.cv_scores_[name]:9.4f} {probe.C_:8.3g} " + " ".join(f"{a:9.4f}" for a in accs)
              + f" {seconds:8.1f}")
    start = time.perf_counter()
    chosen = LinearProbe().fit(tr.features, tr.labels, len(splits.classes))
    print(f"CV chooses {chosen.treatment} (C={chosen.C_:.3g}) in {time.perf_counter() - start:.1f}s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", nargs="+")
    parser.add_argument("--backbone", default="efficientnet_lite0")
    parser.add_argument("--image-size", type=int, default=None)
    args = parser.parse_args()
    for data in args.data:
        measure(data, args.backbone, args.image_size)


if __name__ == "__main__":
    main()
