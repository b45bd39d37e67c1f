"""CPU latency of a distillation teacher against compact students, measured in the same run.

Default teacher: EfficientNet-Lite0 (5-class head) at 256 px, the size it predicts at (--teacher-backbone
efficientnet_lite2 --teacher-size 260 for the larger teacher); students: compact_cnn at 32, 48 and 64 px,
mobilenet_v3_small at 224 px and EfficientNet-Lite0 at --student-sizes (default 96 112 128 160), the pretrained
small student (random weights: latency does not depend on the values). Each figure is fp32,
eval mode, ms per image, the median of repeated timed runs after warm-up, models timed in interleaved
rounds so load on a shared machine hits them alike. Prints one row per model and its speed-up over the
teacher (the issue's target: >= 3x at batch 1).

    python benchmarks/distill_latency.py [--threads 1] [--repeats 30] [--teacher RUN_DIR]
        [--teacher-backbone efficientnet_lite2 --teacher-size 260] [--student-sizes 96 112 128]
"""
from __future__ import annotations

import argparse
import json

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (default 1)")
    parser.add_argument("--repeats", type=int, default=30, help="timed runs at batch 1 (batch 32: a sixth)")
    parser.add_argument("--teacher", default=None, help="a tlearn run as teacher (default: EfficientNet-Lite0)")
    parser.add_argument("--teacher-backbone", default="efficientnet_lite0", help="without --teacher")
    parser.add_argument("--teacher-size", type=int, default=256, help="without --teacher")
    parser.add_argument("--student-sizes", type=int, nargs="+", default=[96, 112, 128, 160],
                        help="EfficientNet-Lite0 student input sizes")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    from tlearn.backbones import TransferModel, load_backbone
    from tlearn.distill.measure import compare_costs
    from tlearn.runs.run import Run

    def model(name: str, weights: str | None) -> TransferModel:
        backbone, info = load_backbone(name, weights)
        return TransferModel(backbone, info.feature_dim, 5, info.architecture)

    if args.teacher:
        run = Run(args.teacher)
        models = {"teacher": (run.model, run.data_config.input_size)}
    else:
        models = {"teacher": (model(args.teacher_backbone, "none"), args.teacher_size)}
    compact = model("compact_cnn", "none")
    models.update({f"compact_cnn@{s}": (compact, s) for s in (32, 48, 64)})
    models["mobilenet_v3_small@224"] = (model("mobilenet_v3_small", "none"), 224)
    lite0 = model("efficientnet_lite0", "none")  # the pretrained small student, at several sizes
    models.update({f"efficientnet_lite0@{s}": (lite0, s) for s in args.student_sizes})
    torch.manual_seed(0)
    costs = compare_costs(models, repeats=args.repeats, batch32_repeats=max(3, args.repeats // 6),
                          threads=args.threads)
    teacher = costs["teacher"]
    for c in costs.values():
        c["speedup_batch1"] = round(teacher["ms_batch1"] / c["ms_batch1"], 2)
        c["speedup_batch32"] = round(teacher["ms_batch32"] / c["ms_batch32"], 2)
    if args.json:
        print(json.dumps(costs, indent=2))
        return
    print(f"CPU fp32, {args.threads} thread(s), median ms per image ({args.repeats} runs at batch 1)")
    print(f"{'model':<24} {'params':>10} {'MB':>7} {'ms b1':>9} {'ms b32':>9} {'x b1':>6} {'x b32':>6}")
    for name, c in costs.items():
        print(f"{name:<24} {c['params']:>10,} {c['mb']:>7.2f} {c['ms_batch1']:>9.2f} {c['ms_batch32']:>9.2f} "
              f"{c['speedup_batch1']:>6.1f} {c['speedup_batch32']:>6.1f}")


if __name__ == "__main__":
    main()
