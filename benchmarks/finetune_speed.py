"""Fine-tuning speed on CPU: tlearn's loop against the classic PyTorch transfer-learning tutorial's loop.

Same model (EfficientNet-Lite0, ImageNet weights, new head, whole network trained), same image size and batch,
measured in the same run, each loop in its own process (for its peak memory). Prints:
  - seconds per epoch, data loading and evaluation included (tlearn: first epoch with the one-off decode, and
    the later epochs that read the decoded-image cache);
  - the model's own training-step limit on ready tensors (no data pipeline can beat it);
  - time for each to first reach the reference's best val accuracy (tlearn: linear probe, then finetune);
  - peak resident memory of each process plus its largest data-loading worker (a forked worker's RSS counts
    the pages it shares with its parent: the sum overstates physical memory, the same way for both).
The reference loop is written the way the tutorial does it: ImageFolder + PIL transforms (RandomResizedCrop,
flip, ToTensor, Normalize), DataLoader with workers, fp32, SGD(lr=1e-3, momentum=0.9), StepLR(7, 0.1).

    python benchmarks/finetune_speed.py [--data ../shared/data/hymenoptera] [--epochs 3] [--size 224] [--batch 32]
                                        [--tlearn-options JSON]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def peak_rss_parts() -> tuple[float, float]:
    """(this process, its largest child process) peak RSS in MB; a forked worker's RSS includes the pages it
    shares with the parent, so their sum overstates the physical memory: it is the figure the issue sets."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    workers = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return own / 1024, workers / 1024


def peak_rss_mb() -> float:
    return sum(peak_rss_parts())


def step_limit(size: int, batch: int, steps: int = 3) -> dict:
    """img/s of forward + backward + AdamW step on ready tensors, fp32 (contiguous and channels_last)."""
    import torch

    from tlearn.backbones.model import TransferModel, load_backbone

    out = {}
    for layout in ("contiguous", "channels_last"):
        backbone, info = load_backbone()
        model = TransferModel(backbone, info.feature_dim, 2, info.architecture).train()
        x, y = torch.randn(batch, 3, size, size), torch.randint(0, 2, (batch,))
        if layout == "channels_last":
            model, x = model.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
        opt = torch.optim.AdamW(model.parameters(), 1e-4)

        def step():
            torch.nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
            opt.zero_grad()

        step()
        start = time.perf_counter()
        for _ in range(steps):
            step()
        out[layout] = batch * steps / (time.perf_counter() - start)
    return out


def reference(data: Path, epochs: int, size: int, batch: int) -> dict:
    """The tutorial's loop, fine-tuning the whole network."""
    import torch
    from torchvision import datasets, transforms

    from tlearn.backbones.model import TransferModel, load_backbone

    torch.manual_seed(0)
    start = time.perf_counter()
    backbone, info = load_backbone()
    cfg = info.data_config
    tf = {
        "train": transforms.Compose([transforms.RandomResizedCrop(size), transforms.RandomHorizontalFlip(),
                                     transforms.ToTensor(), transforms.Normalize(cfg.mean, cfg.std)]),
        "val": transforms.Compose([transforms.Resize(int(size / cfg.crop_pct)), transforms.CenterCrop(size),
                                   transforms.ToTensor(), transforms.Normalize(cfg.mean, cfg.std)]),
    }
    sets = {s: datasets.ImageFolder(data / s, tf[s]) for s in ("train", "val")}
    workers = min(4, os.cpu_count() or 1)
    loaders = {s: torch.utils.data.DataLoader(sets[s], batch_size=batch, shuffle=s == "train", num_workers=workers)
               for s in sets}
    model = TransferModel(backbone, info.feature_dim, len(sets["train"].classes), info.architecture)
    criterion = torch.nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.001, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=7, gamma=0.1)
    rows = []
    for epoch in range(1, epochs + 1):
        t0 = time.perf_counter()
        for phase in ("train", "val"):
            model.train(phase == "train")
            correct = 0
            for inputs, labels in loaders[phase]:
                optimizer.zero_grad()
                with torch.set_grad_enabled(phase == "train"):
                    outputs = model(inputs)
                    loss = criterion(outputs, labels)
                    if phase == "train":
                        loss.backward()
                        optimizer.step()
                correct += int((outputs.argmax(1) == labels).sum())
            if phase == "train":
                scheduler.step()
        rows.append({"epoch": epoch, "seconds": time.perf_counter() - t0,
                     "val_accuracy": correct / len(sets["val"]), "elapsed": time.perf_counter() - start})
    return {"epochs": rows, "peak_rss_mb": peak_rss_mb(), "peak_parts_mb": peak_rss_parts()}


def tlearn_loop(data: Path, epochs: int, size: int, batch: int, cache: str, overrides: dict | None = None) -> dict:
    """tlearn: the linear probe (cached features), then --strategy finetune from it; timed from the start."""
    import torch

    from tlearn.backbones.model import load_backbone
    from tlearn.config import FitConfig
    from tlearn.data.layout import load_splits
    from tlearn.evaluate.metrics import classification_metrics
    from tlearn.evaluate.predict import predict_samples
    from tlearn.strategies import FitContext
    from tlearn.strategies.finetune import FineTune, train_options
    from tlearn.train import train

    torch.manual_seed(0)
    start = time.perf_counter()
    splits = load_splits(data)
    backbone, info = load_backbone()
    info.data_config = info.data_config.with_size(size)
    overrides = overrides or {}
    cfg = FitConfig(data=str(data), out="", strategy="finetune", epochs=epochs, train_batch_size=batch,
                    progress=False, cache_dir=cache, num_workers=overrides.get("num_workers"))
    ctx = FitContext(splits=splits, backbone=backbone, backbone_info=info, out=Path(cache) / "bench-run",
                     config=cfg, precision="bf16", device="cpu", cache_dir=Path(cache))
    strategy = FineTune(cfg)
    model, _, _ = strategy.initial_model(ctx)  # the linear probe as the head
    probs, fs = predict_samples(model, splits.val, info.data_config, precision="bf16", device="cpu",
                                cache_dir=cache, progress=False)
    probe = {"val_accuracy": classification_metrics(fs.labels, probs)["accuracy"],
             "elapsed": time.perf_counter() - start}
    groups = [g for g, _ in model.layer_groups()]
    rows = []
    options = train_options(cfg, ctx, strategy, checkpoint_dir=None, **(overrides or {}))
    result = train(model, strategy.phases(groups), splits.train, splits.val, info.data_config, options,
                   on_epoch=lambda row: rows.append({**row, "elapsed": time.perf_counter() - start}) and None)
    return {"probe": probe, "epochs": [{k: r[k] for k in ("epoch", "seconds", "val_accuracy", "elapsed")}
                                       for r in rows], "decode_seconds": result.decode_seconds,
            "peak_rss_mb": peak_rss_mb(), "peak_parts_mb": peak_rss_parts(), "options": overrides or {}}


def child(kind: str, args) -> dict:
    cmd = [sys.executable, __file__, "--child", kind, "--data", str(args.data), "--epochs", str(args.epochs),
           "--size", str(args.size), "--batch", str(args.batch), "--cache", args.cache,
           "--tlearn-options", args.tlearn_options]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        raise SystemExit(f"{kind} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def first_reaching(rows: list[dict], target: float) -> float | None:
    return next((r["elapsed"] for r in rows if r["val_accuracy"] >= target - 1e-9), None)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "hymenoptera")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--cache", default=None, help="tlearn cache dir (default: a fresh temporary one: cold cache)")
    p.add_argument("--tlearn-options", default="{}",
                   help='TrainOptions for tlearn as JSON, e.g. \'{"micro_batch": 32, "num_workers": 1}\' (the loop '
                        'before issue 23)')
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        fn = {"reference": lambda: reference(args.data, args.epochs, args.size, args.batch),
              "tlearn": lambda: tlearn_loop(args.data, args.epochs, args.size, args.batch, args.cache,
                                            json.loads(args.tlearn_options)),
              "limit": lambda: step_limit(args.size, args.batch)}[args.child]
        print(json.dumps(fn()))
        return
    import tempfile

    args.cache = args.cache or tempfile.mkdtemp(prefix="tlearn-bench-")
    print(f"data {args.data}, EfficientNet-Lite0 at {args.size} px, batch {args.batch}, {args.epochs} epochs, "
          f"{os.cpu_count()} CPU cores, cache {args.cache}")
    limit = child("limit", args)
    ref = child("reference", args)
    ours = child("tlearn", args)

    ref_epoch = sum(r["seconds"] for r in ref["epochs"]) / len(ref["epochs"])
    later = ours["epochs"][1:] or ours["epochs"]
    our_epoch = sum(r["seconds"] for r in later) / len(later)
    our_first = ours["decode_seconds"] + ours["epochs"][0]["seconds"]
    n_train = len(list((args.data / "train").rglob("*.*")))
    print(f"\ntraining-step limit on ready tensors: {limit['channels_last']:.1f} img/s channels_last, "
          f"{limit['contiguous']:.1f} img/s contiguous (fp32)")
    print(f"reference epoch (train {n_train} images + val): {ref_epoch:.1f} s  "
          f"({n_train / ref_epoch:.1f} train img/s incl. eval)")
    print(f"tlearn epoch, cached (epochs 2+):            {our_epoch:.1f} s  ({n_train / our_epoch:.1f} img/s); "
          f"ratio to reference {our_epoch / ref_epoch:.2f} (aim <= 0.6)")
    print(f"tlearn first epoch incl. one-off decode:    {our_first:.1f} s; ratio {our_first / ref_epoch:.2f}")

    target = max(r["val_accuracy"] for r in ref["epochs"])
    t_ref = first_reaching(ref["epochs"], target)
    t_probe = ours["probe"]["elapsed"] if ours["probe"]["val_accuracy"] >= target - 1e-9 else None
    t_ft = first_reaching(ours["epochs"], target)
    print(f"\nreference best val accuracy {target:.4f}, first reached after {t_ref:.1f} s")
    print(f"tlearn linear probe: val {ours['probe']['val_accuracy']:.4f} after {ours['probe']['elapsed']:.1f} s"
          + (f" -> reaches it: ratio {t_probe / t_ref:.2f}" if t_probe else " (below it)"))
    best_ft = max(r["val_accuracy"] for r in ours["epochs"])
    print(f"tlearn finetune (from the probe): best val {best_ft:.4f}; "
          + (f"reaches the reference's best after {t_ft:.1f} s: ratio {t_ft / t_ref:.2f}" if t_ft else
             "never reaches the reference's best in these epochs"))
    t_any = min(t for t in (t_probe, t_ft) if t is not None) if (t_probe or t_ft) else None
    if t_any:
        print(f"time to the reference's best accuracy, best tlearn strategy: ratio {t_any / t_ref:.2f} (aim <= 0.33)")
    (ref_own, ref_kid), (our_own, our_kid) = ref["peak_parts_mb"], ours["peak_parts_mb"]
    print(f"\npeak memory (process + its largest worker, RSS): reference {ref['peak_rss_mb']:.0f} MB "
          f"({ref_own:.0f} + {ref_kid:.0f}), tlearn {ours['peak_rss_mb']:.0f} MB ({our_own:.0f} + {our_kid:.0f}); "
          f"ratio {ours['peak_rss_mb'] / ref['peak_rss_mb']:.2f} (aim <= 0.5)")
    print("\nper-epoch detail:")
    for name, rows in (("reference", ref["epochs"]), ("tlearn", ours["epochs"])):
        for r in rows:
            print(f"  {name:9s} epoch {r['epoch']}: {r['seconds']:.1f} s, val {r['val_accuracy']:.4f}, "
                  f"elapsed {r['elapsed']:.1f} s")


if __name__ == "__main__":
    main()
