"""Where fine-tuning's memory goes: peak RSS and speed of one optimizer step (32 images) per way of taking it.

Each variant runs in a fresh process on ready tensors (no data pipeline): EfficientNet-Lite0, 224 px,
channels_last, BatchNorm frozen (the finetune default), SGD + L2-SP as the finetune recipe trains. Prints, for
each, the process's peak resident memory, the part of it that the step added over the loaded model, and the
images/s, next to the plain fp32 batch-32 step measured in the same run.

    python benchmarks/step_memory.py [--size 224] [--batch 32] [--steps 3]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

VARIANTS = {
    "fp32 batch 32": {},
    "fp32 micro 16 x2": {"micro": 16},
    "fp32 micro 8 x4": {"micro": 8},
    "fp32 micro 4 x8": {"micro": 4},
    "bf16 autocast batch 32": {"bf16": True},
    "checkpoint stages 0-2": {"checkpoint": 3},
    "checkpoint all stages": {"checkpoint": 99},
    "bf16 + micro 16 x2": {"bf16": True, "micro": 16},
}


def vm(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run_variant(size: int, batch: int, steps: int, micro: int | None = None, bf16: bool = False,
                checkpoint: int = 0) -> dict:
    import torch

    from tlearn.backbones.model import TransferModel, load_backbone
    from tlearn.train.l2sp import StartingPointPenalty

    torch.manual_seed(0)
    backbone, info = load_backbone()
    model = TransferModel(backbone, info.feature_dim, 2, info.architecture).to(memory_format=torch.channels_last)
    model.train()
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.eval()
    if checkpoint:
        from tlearn.train.memory import checkpoint_stages

        checkpoint_stages(model, checkpoint)
    anchor = StartingPointPenalty(model, 0.1)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, nesterov=True)
    x = torch.randn(batch, 3, size, size).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 2, (batch,))
    micro = micro or batch

    def step():
        for start in range(0, batch, micro):
            xs, ys = x[start:start + micro], y[start:start + micro]
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                loss = torch.nn.functional.cross_entropy(model(xs).float(), ys) * (len(ys) / batch)
            if start == 0:
                loss = loss + anchor(model)
            loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    loaded = vm("VmRSS")
    step()  # warm-up: momentum buffers, oneDNN primitives
    start = time.perf_counter()
    for _ in range(steps):
        step()
    rate = batch * steps / (time.perf_counter() - start)
    return {"loaded_mb": loaded, "peak_mb": vm("VmHWM"), "img_s": rate}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--only", nargs="*", help="variant names (default: all)")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        print(json.dumps(run_variant(args.size, args.batch, args.steps, **json.loads(args.child))))
        return
    rows = {}
    for name, kw in VARIANTS.items():
        if args.only and name not in args.only:
            continue
        cmd = [sys.executable, __file__, "--child", json.dumps(kw), "--size", str(args.size), "--batch",
               str(args.batch), "--steps", str(args.steps)]
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
        if proc.returncode:
            print(f"{name}: failed\n{proc.stderr[-2000:]}")
            continue
        rows[name] = json.loads(proc.stdout.strip().splitlines()[-1])
        print(name, rows[name], flush=True)
    base = rows.get("fp32 batch 32")
    print(f"\n{'variant':<24} {'peak MB':>8} {'step adds MB':>12} {'img/s':>6} {'x fp32 b32 memory':>18} "
          f"{'x fp32 b32 speed':>17}")
    for name, r in rows.items():
        added = r["peak_mb"] - r["loaded_mb"]
        rel = (f"{r['peak_mb'] / base['peak_mb']:>18.2f} {r['img_s'] / base['img_s']:>17.2f}" if base else "")
        print(f"{name:<24} {r['peak_mb']:>8.0f} {added:>12.0f} {r['img_s']:>6.1f} {rel}")


if __name__ == "__main__":
    main()
