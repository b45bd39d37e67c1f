"""Feature-extraction throughput: the whole pipeline against the model's forward alone, and peak memory.

    python benchmarks/extract_throughput.py [--data DIR] [--n 512] [--batch-size 64] [--backbone efficientnet_lite0]
        [--repeat 3] [--ways none,nice] [--no-memory]

Prints, for one run on this machine (its load average first: the ratio is meant for an idle machine):
- what each stage costs per image on one core (decode, resize + crop, normalise) against the forward;
- images/s of decode -> transform -> forward (tlearn's extractor, cache off) per precision and worker count;
- images/s of the forward alone on ready tensors (same model, batch, precision and threads), measured before,
  between and after the pipeline rounds (their median is the baseline): what no pipeline can beat;
- their ratio (aim >= 0.95 with the default workers);
- peak resident memory of a fresh process extracting N and 4N images (flat = images are streamed).
It asserts nothing about time.
"""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "flower_photos" / "train"


def image_paths(data: Path, n: int) -> list[Path]:
    from tlearn.data.layout import list_images

    files = list_images(data)
    return [files[i % len(files)] for i in range(n)]  # repeat when N exceeds the folder


def pipeline_rate(backbone, info, paths, batch_size, precision, workers) -> float:
    """workers: None (the default), 0, N processes, or "nice" (the default's thread at a lower priority)."""
    from tlearn.data.layout import Sample
    from tlearn.features import extract, extract_features

    samples = [Sample(p, 0) for p in paths]
    default = extract.DECODE_NICENESS
    if workers == "nice":  # the same extractor with its decode thread at another niceness
        extract.DECODE_NICENESS = 10 if default == 0 else 0
    try:
        start = time.perf_counter()
        extract_features(backbone, samples, info.data_config, precision=precision, batch_size=batch_size,
                         use_cache=False, num_workers=None if workers == "nice" else workers, progress=False)
        return len(paths) / (time.perf_counter() - start)
    finally:
        extract.DECODE_NICENESS = default


def forward_rate(backbone, info, n, batch_size, precision) -> float:
    import torch

    from tlearn.device import autocast
    from tlearn.features import prepare_for_inference

    device = torch.device("cpu")
    module = prepare_for_inference(backbone, device)
    size = info.data_config.input_size
    batch = torch.randn(batch_size, 3, size, size).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode(), autocast(precision, device):
        module(batch)  # warm-up
        start = time.perf_counter()
        done = 0
        while done < n:
            module(batch)
            done += batch_size
    return done / (time.perf_counter() - start)


def stage_costs(info, paths, n: int = 64) -> dict:
    """Milliseconds per image on one thread: decode, resize + centre crop, normalise (per image and batched)."""
    import torch
    from PIL import Image

    from tlearn.data.images import load_rgb
    from tlearn.data.transforms import BatchNormalize, normalize, resize_crop, to_uint8_chw
    from torchvision.transforms import v2 as T

    cfg, paths = info.data_config, paths[:n]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        t0 = time.perf_counter()
        images = [load_rgb(p, draft_size=cfg.resize_size) for p in paths]
        t1 = time.perf_counter()
        crops = [resize_crop(cfg)(im) for im in images]
        t2 = time.perf_counter()
        tensors = [to_uint8_chw(c) for c in crops]
        t3 = time.perf_counter()
        per_image = T.Compose([T.PILToTensor(), *normalize(cfg)])
        for c in crops:
            per_image(c)
        t4 = time.perf_counter()
        BatchNormalize(cfg)(tensors)  # once untimed: the first batch's fresh pages are faulted in
        t5 = time.perf_counter()
        BatchNormalize(cfg)(tensors)
        t6 = time.perf_counter()
    finally:
        torch.set_num_threads(threads)
    ms = lambda a, b: (b - a) * 1000 / len(paths)  # noqa: E731
    sizes = sorted(Image.open(p).size for p in paths)
    return {"decode": ms(t0, t1), "resize_crop": ms(t1, t2), "to_uint8": ms(t2, t3),
            "normalize_per_image": ms(t3, t4), "normalize_batched": ms(t5, t6), "median_size": sizes[len(sizes) // 2]}


def child_peak_rss(args, n: int) -> float:
    """Peak RSS (MiB) of the main process of a fresh run that extracts n images."""
    cmd = [sys.executable, __file__, "--child", "--n", str(n), "--data", str(args.data), "--batch-size",
           str(args.batch_size), "--backbone", args.backbone]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])["peak_rss_mib"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--n", type=int, default=512)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--backbone", default="efficientnet_lite0")
    p.add_argument("--repeat", type=int, default=1, help="rounds of forward + pipelines; medians are printed")
    p.add_argument("--ways", help="comma-separated subset of: none (the default), nice, 0, 1, 2")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory runs")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()

    from tlearn.backbones import load_backbone
    from tlearn.device import bf16_supported, pick_device

    backbone, info = load_backbone(args.backbone)
    paths = image_paths(args.data, args.n)
    if args.child:
        pipeline_rate(backbone, info, paths, args.batch_size, "auto", None)
        # the process holds the model and the features; decoding (threads or workers) only images in flight
        usage = [resource.getrusage(who).ru_maxrss for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
        print(json.dumps({"peak_rss_mib": round(sum(usage) / 1024, 1)}))
        return

    import os

    import torch

    from tlearn.features.extract import default_workers

    precisions = ["bf16", "fp32"] if bf16_supported(pick_device("cpu")) else ["fp32"]
    print(f"backbone {args.backbone}, {info.data_config.input_size} px, batch {args.batch_size}, "
          f"{args.n} images from {args.data}; {os.cpu_count()} cores, {torch.get_num_threads()} torch threads, "
          f"load average {os.getloadavg()[0]:.2f} (idle: well under the cores)")
    costs = stage_costs(info, paths)
    print(f"per image on one core (median {costs['median_size'][0]}x{costs['median_size'][1]} px): decode "
          f"{costs['decode']:.2f} ms, resize + crop {costs['resize_crop']:.2f} ms, to uint8 {costs['to_uint8']:.2f} ms, "
          f"normalise {costs['normalize_batched']:.2f} ms batched ({costs['normalize_per_image']:.2f} ms per image)")
    pipeline_rate(backbone, info, paths, args.batch_size, precisions[0], None)  # the files into the page cache
    print(f"{'precision':<9} {'decoding in':<22} {'pipeline img/s':>15} {'forward img/s':>14} {'ratio':>6}")
    ways = {None: f"{default_workers() or 1} thread(s) (default)", "nice": "the same, other niceness",
            0: "the main thread", 1: "1 worker process", 2: "2 worker processes"}
    ways = {w: name for w, name in ways.items() if args.ways is None or str(w).lower() in args.ways.split(",")}
    for precision in precisions:
        # rounds interleave the forward alone with each pipeline, so a drift in the machine's speed hits both
        forwards, rates = [], {w: [] for w in ways}
        for _ in range(args.repeat):
            forwards.append(forward_rate(backbone, info, args.n, args.batch_size, precision))
            for w in ways:
                rates[w].append(pipeline_rate(backbone, info, paths, args.batch_size, precision, w))
        forwards.append(forward_rate(backbone, info, args.n, args.batch_size, precision))
        forward = statistics.median(forwards)
        for workers, rate in rates.items():
            rate = statistics.median(rate)
            print(f"{precision:<9} {ways[workers]:<22} {rate:>15.1f} {forward:>14.1f} {rate / forward:>6.3f}")
        print(f"{'':<9} forward alone {', '.join(f'{f:.1f}' for f in forwards)} img/s (median of {len(forwards)}); "
              f"forward-only ms/img on all threads {1000 / forward:.1f}")
    if args.no_memory:
        return
    small, large = child_peak_rss(args, args.n), child_peak_rss(args, 4 * args.n)
    print(f"peak memory (process + largest worker): {small:.0f} MiB for {args.n} images, {large:.0f} MiB for {4 * args.n} "
          f"(ratio {large / small:.2f}; flat means images are streamed, only features kept)")


if __name__ == "__main__":
    main()
