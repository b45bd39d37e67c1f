"""tlearn distill DATA --teacher RUN --student NAME --out RUN2 [--temperature T] [--alpha A] [--epochs N] ..."""
from __future__ import annotations

import json
from dataclasses import fields

from . import examples


def register(sub) -> None:
    from ..distill.config import DEFAULT_STUDENT
    from ..distill.loss import DEFAULT_ALPHA, DEFAULT_TEMPERATURE
    from .fit import AUGMENT_PRESETS

    p = sub.add_parser(
        "distill", help="teach a small, fast student from a trained teacher run (knowledge distillation)",
        description="Hinton distillation: the student learns the teacher's temperature-softened outputs mixed "
                    "with the labels of DATA. The student run is a normal run directory; its metrics.json adds a "
                    "'distillation' block (teacher vs student accuracy, size and CPU latency).",
        **examples("tlearn distill flowers --teacher runs/flowers --out runs/flowers-student",
                   "tlearn distill flowers --teacher runs/flowers --out runs/student-t8 --temperature 8 --epochs 60"))
    p.add_argument("data", help="data folder or CSV manifest with the teacher's classes")
    p.add_argument("--teacher", required=True, help="a tlearn run directory (e.g. from `tlearn fit`)")
    p.add_argument("--out", required=True, help="student run directory to write")
    p.add_argument("--student", default=DEFAULT_STUDENT,
                   help=f"student backbone: a registry name (default {DEFAULT_STUDENT}, ~0.58 M params) or timm:<name>")
    p.add_argument("--student-weights", default="none",
                   help="none (random init, default), pretrained (the registry's), or a weights file")
    p.add_argument("--student-size", type=int, default=None,
                   help="student input size in px (default: the student's own, 32 for compact_cnn)")
    p.add_argument("--temperature", type=float, default=DEFAULT_TEMPERATURE, help="softening temperature T")
    p.add_argument("--alpha", type=float, default=DEFAULT_ALPHA,
                   help="weight of the teacher's soft targets (1 - alpha on the labels)")
    p.add_argument("--feature-weight", type=float, default=0.0, metavar="BETA",
                   help="also teach the teacher's pooled features (a FitNets hint through a training-only "
                        "projection, weight BETA, e.g. 1); 0: off")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--lr", type=float, default=3e-3, help="AdamW peak learning rate (warm-up, cosine decay)")
    p.add_argument("--weight-decay", type=float, default=0.05)
    p.add_argument("--train-batch-size", type=int, default=64)
    p.add_argument("--augment", choices=list(AUGMENT_PRESETS), default="crop",
                   help="student augmentation preset, as for fit (default crop: random crops, no flip). With "
                        "augmentation the teacher judges each augmented batch; with none or flip its outputs are "
                        "cached. flip/light/medium/strong mirror images: not for data where left/right matters "
                        "(traffic signs)")
    p.add_argument("--crops", choices=["student", "teacher"], default="student",
                   help="resolution augmented crops are cut at: the student's (the teacher sees them resized to its "
                        "size; default) or the teacher's (the student gets them downsampled, the teacher at full "
                        "detail)")
    p.add_argument("--ema", type=float, default=None, metavar="DECAY",
                   help="keep a moving average of the student's weights (e.g. 0.98), for both students")
    p.add_argument("--unlabeled", default=None, metavar="DIR",
                   help="images without labels (recursive), used through the teacher's soft targets")
    p.add_argument("--student-alone", action="store_true",
                   help="also train the same student without the teacher (RUN/student-alone) to measure the gain")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--val-fraction", type=float, default=0.2, help="held out of train when DATA has no val/")
    p.add_argument("--batch-size", type=int, default=64, help="images per forward pass for teacher and evaluation")
    p.add_argument("--precision", choices=["auto", "bf16", "fp32"], default="auto", help="teacher inference")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    p.add_argument("--cache-dir", default=None, help="cache folder (default TLEARN_CACHE or ~/.cache/tlearn)")
    p.add_argument("--num-workers", type=int, default=None, help="image decoding processes")
    p.add_argument("--latency-repeats", type=int, default=20, help="timed runs per latency figure")
    p.add_argument("--latency-threads", type=int, default=1, help="CPU threads for the latency measurement")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..distill.config import DistillConfig
    from ..distill.distill import distill_config

    known = {f.name for f in fields(DistillConfig)}
    result = distill_config(DistillConfig(**{k: v for k, v in vars(args).items() if k in known}))
    m = result.metrics
    summary = {split: {k: round(v, 4) for k, v in m[split].items() if isinstance(v, float)} | {"n": m[split]["n"]}
               for split in ("val", "test") if split in m}
    summary.update(distillation=m["distillation"], train_seconds=m["train_seconds"], skipped=len(m["skipped"]),
                   run=str(result.path))
    print(json.dumps(summary, indent=2))
    return 0
