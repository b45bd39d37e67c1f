"""How tlearn's commands scale with the number of images: seconds per 1,000 images and peak memory at n images.

For each n, a pool of n real-looking images (benchmarks/scale_pools.py: crops of the shared flower photos at
64-96 px, 80/10/10 train/val/test, plus n/10 unlabeled crops) is built outside the repository (reused when
present), then each command runs in a child process of its own, with a fresh cache per n:
  leakage      the leakage check alone (tlearn.data.leakage.check_leakage, a cold cache)
  fit_cold     tlearn fit (linear probe) on a cold feature cache: every image through the backbone
  fit_warm     the same fit again: features, data facts and the probe's choice from the cache
  evaluate     tlearn evaluate RUN POOL/test
  predict      tlearn predict RUN UNLABELED/ (n/10 images; predict never reads the feature cache)
  doctor       tlearn doctor POOL (features from the cache fit filled)
  rank         tlearn rank POOL --rank-sources BACKBONE (features from the cache)
  select       tlearn select TRAIN/ --budget 100 (cold start over the training images, features warm)
Peak memory is the child's maximum resident set (resource.getrusage(RUSAGE_CHILDREN) in a wrapper process that
runs only that command). "forward" is fit_cold's feature phase minus fit_warm's (the backbone forward over all n
images); "fit_cold_rest" is fit_cold without it.

--torchrun also runs the cold fit as two torchrun agents on this machine (--nnodes 2, --node-rank 0 and 1, one
process each, rendezvous at localhost:PORT), each with a fresh cache, and compares its accuracy with fit_cold's.

Usage: python benchmarks/scale.py [--sizes 10000 30000 100000] [--commands fit_cold,...] [--torchrun]
       [--root ../scale-data] [--work ../scale-work] [--image-size 64] [--results docs/images/scale]
Writes RESULTS.json / RESULTS.csv (each row as it is measured, replacing the same size and command there) and
RESULTS.png; a command that fails is reported and the others still run.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
from scale_pools import ROOT, build  # noqa: E402

PY = sys.executable
TLEARN = [PY, "-m", "tlearn"]
COMMANDS = ("leakage", "fit_cold", "fit_warm", "evaluate", "predict", "doctor", "rank", "select")
BACKBONE = "efficientnet_lite0"  # the registry's one backbone with weights installed offline
LEAKAGE = ("import sys, time; from tlearn.data.layout import load_splits; from tlearn.data.leakage import "
           "check_leakage; r = check_leakage(load_splits(sys.argv[1]), cache_dir=sys.argv[2]); "
           "print('near', r.near_count, 'exact', r.exact_count, 'seconds', round(r.seconds, 2))")


class Failed(Exception):
    pass


def measured(cmd: list[str], stdout=None) -> dict:
    """Run cmd in a wrapper process that reports the command's wall time and peak resident set."""
    wrapper = [PY, __file__, "--child", json.dumps(cmd)] + (["--stdout", stdout] if stdout else [])
    proc = subprocess.run(wrapper, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise Failed(f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1])


def child(cmd: list[str], stdout: str | None) -> None:
    out = open(stdout, "w") if stdout else subprocess.DEVNULL
    start = time.perf_counter()
    proc = subprocess.run(cmd, stdout=out, stderr=subprocess.PIPE, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        print(proc.stderr[-3000:], file=sys.stderr)
        raise SystemExit(proc.returncode)
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # kilobytes on Linux
    print(json.dumps({"seconds": round(seconds, 2), "peak_mb": round(peak_kb / 1024, 1),
                      "stderr_tail": proc.stderr[-400:]}))


def counts(pool: Path) -> dict[str, int]:
    return {split: sum(1 for _ in (pool / split).rglob("*.jpg")) for split in ("train", "val", "test")}


def phases(run: Path) -> dict:
    return json.loads((run / "metrics.json").read_text())["phase_seconds"]


def accuracy(run: Path) -> dict:
    m = json.loads((run / "metrics.json").read_text())
    return {split: m[split]["accuracy"] for split in ("val", "test") if split in m}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def measure(n: int, commands: list[str], root: Path, where: Path, size: int, torchrun: bool,
            results: Path) -> list[dict]:
    """Each command at n images, in where/ (a fit already there is reused by the commands that read its run);
    each row is saved into RESULTS as soon as it is measured."""
    t = time.perf_counter()
    pool, unlabeled = build(n, root)
    print(f"pool of {n}: {pool} ({time.perf_counter() - t:.0f}s)", flush=True)
    split = counts(pool)
    total = sum(split.values())
    cache, run = where / "cache", where / "run"
    common = ["--image-size", str(size), "--cache-dir", str(cache), "--no-progress", "-q"]
    rows: list[dict] = [r for r in load(results) if r["n"] == n]  # earlier rows of this n (fit_cold's, say)

    def add(command: str, images: int, result: dict, **extra) -> None:
        row = {"n": n, "command": command, "images": images, "seconds": result["seconds"],
               "s_per_1k": round(1000 * result["seconds"] / images, 3), "peak_mb": result["peak_mb"], **extra}
        rows[:] = [r for r in rows if r["command"] != command] + [row]
        print(json.dumps(row), flush=True)
        save([row], results)

    def one(command: str) -> None:
        if command == "leakage":
            add(command, total, measured([PY, "-c", LEAKAGE, str(pool), str(where / "leakage-cache")]))
        elif command == "fit_cold":
            add(command, total, measured(TLEARN + ["fit", str(pool), "--out", str(run), *common]),
                accuracy=accuracy(run))
        elif command == "fit_warm":
            add(command, total, measured(TLEARN + ["fit", str(pool), "--out", str(where / "run-warm"), *common,
                                                   "--overwrite"]))
            cold, warm = phases(run)["features"], phases(where / "run-warm")["features"]
            fit = next(r for r in rows if r["command"] == "fit_cold")
            add("forward", total, {"seconds": round(cold - warm, 2), "peak_mb": fit["peak_mb"]})
            add("fit_cold_rest", total, {"seconds": round(fit["seconds"] - (cold - warm), 2),
                                         "peak_mb": fit["peak_mb"]})
        elif command == "evaluate":
            add(command, split["test"], measured(TLEARN + ["evaluate", str(run), str(pool / "test"), "-q"]))
        elif command == "predict":
            add(command, n // 10, measured(TLEARN + ["predict", str(run), str(unlabeled), "-q"],
                                           stdout=str(where / "predictions.csv")))
        elif command == "doctor":
            add(command, total, measured(TLEARN + ["doctor", str(pool), "--out", str(where / "doctor"), *common]))
        elif command == "rank":
            add(command, split["train"], measured(TLEARN + ["rank", str(pool), "--rank-sources", BACKBONE,
                                                            *common]))
        elif command == "select":
            add(command, split["train"], measured(TLEARN + ["select", str(pool / "train"), "--budget", "100", "--out",
                                                            str(where / "select"), "--overwrite", *common]))

    for command in [c for c in COMMANDS if c in commands]:
        try:
            one(command)
        except Failed as exc:  # the others still run
            print(exc, flush=True)
    if torchrun:
        try:
            row = two_agents(n, pool, where, size, total, rows)
            print(json.dumps(row), flush=True)
            save([row], results)
            rows.append(row)
        except Failed as exc:
            print(exc, flush=True)
    return rows


def two_agents(n: int, pool: Path, where: Path, size: int, total: int, rows: list[dict]) -> dict:
    """The cold fit as two torchrun agents (one process each, --node-rank 0 and 1) meeting at localhost."""
    port = free_port()
    out = where / "run-torchrun"
    procs = []
    start = time.perf_counter()
    for node in (0, 1):
        cmd = [PY, "-m", "torch.distributed.run", "--nnodes", "2", "--node-rank", str(node), "--nproc-per-node",
               "1", "--rdzv-endpoint", f"localhost:{port}",
               "-m", "tlearn", "fit", str(pool), "--out", str(out), "--image-size", str(size),
               "--cache-dir", str(where / f"cache-node{node}"), "--no-progress", "-q"]
        procs.append(subprocess.Popen([PY, __file__, "--child", json.dumps(cmd)], stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(REPO)}))
    results = []
    for p in procs:
        stdout, stderr = p.communicate()
        if p.returncode != 0:
            raise Failed(f"torchrun agent failed:\n{stdout[-2000:]}\n{stderr[-3000:]}")
        results.append(json.loads(stdout.strip().splitlines()[-1]))
    seconds = time.perf_counter() - start
    single = next((r for r in rows if r["command"] == "fit_cold"), None)
    return {"n": n, "command": "fit_cold_torchrun_2_agents", "images": total, "seconds": round(seconds, 2),
            "s_per_1k": round(1000 * seconds / total, 3), "peak_mb": max(r["peak_mb"] for r in results),
            "accuracy": accuracy(out), "single_process_accuracy": single and single.get("accuracy"),
            "single_process_seconds": single and single["seconds"]}


def load(prefix: Path) -> list[dict]:
    path = prefix.with_suffix(".json")
    return json.loads(path.read_text()) if path.exists() else []


def save(rows: list[dict], prefix: Path) -> None:
    """Merge rows into PREFIX.json (replacing the same n and command), write PREFIX.csv and PREFIX.png."""
    keys = {(r["n"], r["command"]) for r in rows}
    merged = sorted([r for r in load(prefix) if (r["n"], r["command"]) not in keys] + rows,
                    key=lambda r: (r["command"], r["n"]))
    prefix.parent.mkdir(parents=True, exist_ok=True)
    prefix.with_suffix(".json").write_text(json.dumps(merged, indent=1) + "\n")
    fields = ["n", "command", "images", "seconds", "s_per_1k", "peak_mb"]
    with prefix.with_suffix(".csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fields, extrasaction="ignore")
        w.writeheader()
        w.writerows(merged)
    plot(merged, prefix.with_suffix(".png"))


def table(rows: list[dict]) -> str:
    sizes = sorted({r["n"] for r in rows})
    lines = ["| command | " + " | ".join(f"{n:,} images: s/1k, peak MB" for n in sizes) + " | s/1k ratio |",
             "|---|" + "---|" * (len(sizes) + 1)]
    for command in dict.fromkeys(r["command"] for r in rows):
        by = {r["n"]: r for r in rows if r["command"] == command}
        cells = [f"{by[n]['s_per_1k']:.2f}, {by[n]['peak_mb']:.0f}" if n in by else "–" for n in sizes]
        have = [n for n in sizes if n in by]
        ratio = (f"{by[have[-1]]['s_per_1k'] / by[have[0]]['s_per_1k']:.2f}x ({have[0] // 1000}k -> "
                 f"{have[-1] // 1000}k)" if len(have) > 1 and by[have[0]]['s_per_1k'] else "–")
        lines.append(f"| {command} | " + " | ".join(cells) + f" | {ratio} |")
    return "\n".join(lines)


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.2))
    colours = plt.get_cmap("tab20").colors
    for k, command in enumerate(dict.fromkeys(r["command"] for r in rows)):
        pts = sorted((r["n"], r["s_per_1k"], r["peak_mb"]) for r in rows if r["command"] == command)
        style = "--" if command in ("forward", "fit_cold_rest") else "-"
        colour = colours[k % len(colours)]
        a.plot([p[0] for p in pts], [p[1] for p in pts], style, marker="o", label=command, color=colour)
        if command not in ("forward", "fit_cold_rest"):
            b.plot([p[0] for p in pts], [p[2] for p in pts], marker="o", label=command, color=colour)
    a.set(xscale="log", yscale="log", xlabel="images", ylabel="seconds per 1,000 images",
          title="time per image (flat = linear)")
    b.set(xscale="log", xlabel="images", ylabel="peak resident memory (MB)", title="peak memory")
    b.axhline(6000, color="grey", lw=0.8, ls=":")
    a.legend(fontsize=7, ncol=2)
    b.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(json.loads(sys.argv[2]), sys.argv[4] if len(sys.argv) > 4 else None)
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10000, 30000, 100000])
    ap.add_argument("--commands", default=",".join(COMMANDS))
    ap.add_argument("--torchrun", action="store_true", help="also the cold fit as two torchrun agents")
    ap.add_argument("--root", type=Path, default=ROOT)
    ap.add_argument("--work", type=Path, default=ROOT.parent / "scale-work")
    ap.add_argument("--image-size", type=int, default=64)
    ap.add_argument("--results", type=Path, default=REPO / "docs" / "images" / "scale")
    ap.add_argument("--keep", action="store_true", help="keep each size's runs and caches under --work")
    ap.add_argument("--reuse", type=Path, help="the folder of an earlier --keep run of one size: its fit and "
                    "caches are reused by the commands asked for")
    args = ap.parse_args()
    commands = [c for c in args.commands.split(",") if c]
    unknown = set(commands) - set(COMMANDS)
    if unknown:
        raise SystemExit(f"unknown command(s) {sorted(unknown)}; choose from {', '.join(COMMANDS)}")
    for n in args.sizes:
        where = args.reuse or args.work / f"n{n}-{time.strftime('%Y%m%d-%H%M%S')}"
        measure(n, commands, args.root, where, args.image_size, args.torchrun, args.results)
        if not args.keep and not args.reuse:
            shutil.rmtree(where, ignore_errors=True)
    print(table(load(args.results)))

if __name__ == "__main__":
    main()
