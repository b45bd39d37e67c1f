"""tlearn demo: the main job, end to end, on real images that come with an installed package."""
from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("demo", help="train and evaluate on built-in real images (a few minutes, offline)")
    p.add_argument("--out", default="tlearn-demo", help="folder for the demo's run directories")
    p.add_argument("--no-progress", dest="progress", action="store_false")
    p.add_argument("--no-study", dest="study", action="store_false",
                   help="skip the short transfer study (scratch vs linear-probe)")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..demo import run_demo

    result = run_demo(args.out, progress=args.progress, study=args.study)
    data = result["data"]
    print(f"\nData: {data.name} ({data.source}), {len(data.counts)} splits: "
          + ", ".join(f"{k} {v}" for k, v in data.counts.items()) + f" images\n      {data.path}")
    for name, run in result["runs"].items():
        m = run.metrics
        print(f"\n{name} on {run.config['backbone']['name']} -> {run.path}")
        for split in ("val", "test"):
            if split in m:
                s = m[split]
                print(f"  {split:<5} accuracy {s['accuracy']:.3f}  balanced {s['balanced_accuracy']:.3f}  "
                      f"macro-F1 {s['macro_f1']:.3f}  (n={s['n']})")
        print(f"  trained in {m['train_seconds']:.1f}s; try: tlearn predict {run.path} {data.path}/test")
    for line in result.get("notes", []):
        print(line)
    return 0
