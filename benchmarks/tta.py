"""Does test-time augmentation help? Metrics and time of plain, flip and ten-crop prediction on a labelled split.

    python benchmarks/tta.py RUN SPLIT_DIR [RUN SPLIT_DIR ...] [--policies flip crops]

Example (linear-probe runs from `tlearn fit ../shared/data/<set> --out runs/<set>`):
    python benchmarks/tta.py runs/hymenoptera ../shared/data/hymenoptera/val runs/flowers ../shared/data/flower_photos/val

Prints accuracy, balanced accuracy, log loss and ECE per policy, the change against plain prediction measured in
the same run, and seconds (all without the feature cache, so the time ratio is the real cost). Exactly-paired
McNemar counts say whether an accuracy change is more than noise: b = images TTA fixed, c = images TTA broke.
"""
from __future__ import annotations

import argparse
import time

from scipy.stats import binomtest

from tlearn.data.layout import read_labelled_folder
from tlearn.evaluate.metrics import classification_metrics
from tlearn.evaluate.predict import predict_samples
from tlearn.evaluate.tta import predict_samples_tta
from tlearn.runs.run import Run


def measure(run_dir: str, split: str, policies: list[str], batch_size: int) -> None:
    run = Run(run_dir)
    samples, _ = read_labelled_folder(split, run.classes)
    precision = run.config.get("precision", "auto")
    start = time.perf_counter()
    plain, fs = predict_samples(run.model, samples, run.data_config, precision=precision, device="cpu",
                                batch_size=batch_size, use_cache=False, progress=False)
    base_seconds = time.perf_counter() - start
    y = fs.labels
    base = classification_metrics(y, plain)
    print(f"\n{run_dir} on {split}: {len(y)} images, {len(run.classes)} classes, precision {precision}")
    print(f"{'policy':<7} {'accuracy':>8} {'balanced':>8} {'log loss':>8} {'ECE':>6} {'seconds':>8} {'x time':>6}"
          f"  {'fixed':>5} {'broke':>5} {'McNemar p':>9}")
    print(f"{'plain':<7} {base['accuracy']:8.4f} {base['balanced_accuracy']:8.4f} {base['loss']:8.4f} "
          f"{base['ece']:6.4f} {base_seconds:8.1f} {1.0:6.1f}")
    right = plain.argmax(1) == y
    for policy in policies:
        start = time.perf_counter()
        probs, tfs = predict_samples_tta(run.model, samples, run.data_config, policy, precision=precision,
                                         device="cpu", batch_size=batch_size)
        seconds = time.perf_counter() - start
        assert [s.path for s in tfs.samples] == [s.path for s in fs.samples]
        m = classification_metrics(y, probs)
        tta_right = probs.argmax(1) == y
        fixed, broke = int((tta_right & ~right).sum()), int((~tta_right & right).sum())
        p = binomtest(fixed, fixed + broke, 0.5).pvalue if fixed + broke else 1.0
        print(f"{policy:<7} {m['accuracy']:8.4f} {m['balanced_accuracy']:8.4f} {m['loss']:8.4f} {m['ece']:6.4f} "
              f"{seconds:8.1f} {seconds / base_seconds:6.1f}  {fixed:5d} {broke:5d} {p:9.3f}")
        print(f"{'':<7} {m['accuracy'] - base['accuracy']:+8.4f} {m['balanced_accuracy'] - base['balanced_accuracy']:+8.4f} "
              f"{m['loss'] - base['loss']:+8.4f} {m['ece'] - base['ece']:+6.4f}   (change against plain)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pairs", nargs="+", help="RUN SPLIT_DIR pairs")
    parser.add_argument("--policies", nargs="+", default=["flip", "crops"])
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    if len(args.pairs) % 2:
        parser.error("give RUN SPLIT_DIR pairs")
    for run_dir, split in zip(args.pairs[::2], args.pairs[1::2]):
        measure(run_dir, split, args.policies, args.batch_size)


if __name__ == "__main__":
    main()
