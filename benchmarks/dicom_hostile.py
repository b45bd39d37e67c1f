"""Hostile DICOM files against serve, predict and fit: /health latency while deflate bombs and forged codestreams
are posted, the server's peak memory against its bound, and the peak memory of `predict` and `fit` with the
hostile files among valid ones, each beside a baseline measured in the same run.

    python benchmarks/dicom_hostile.py [--seconds 10] [--clients 6] [--decode-threads 2] [--json]

The corpus is tests/hostile_dicom.py's (deflate bombs of 1 GiB in a 1 MB file, 64x64 headers over 20000x20000
JPEG / JPEG-LS / JPEG 2000 codestreams, an RLE run bomb, malformed LUT and rescale attributes) and its two valid
files. The server runs a tiny ONNX model (benchmarks/serve_hostile.py) so what is measured is reading and refusing.
Linux only (/proc, wait4).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "benchmarks"), str(REPO / "tests")]
import hostile_dicom as corpus  # noqa: E402
import serve_hostile as sh  # noqa: E402

SERVER_GROWTH_BOUND_MB = 500  # documented: peak growth while hostile images are posted with 2 decode threads
HEALTH_TARGET_S = 0.5


def health_latencies(port: int, stop: threading.Event, every_s: float = 0.05) -> list[float]:
    out = []
    while not stop.is_set():
        t0 = time.perf_counter()
        status, _ = sh.get(port, "/health", timeout=30)
        out.append(time.perf_counter() - t0 if status == 200 else float("inf"))
        time.sleep(every_s)
    return out


def summary(values: list[float]) -> dict:
    ordered = sorted(values)
    return {"n": len(values), "median_s": round(statistics.median(ordered), 4),
            "p95_s": round(ordered[int(0.95 * (len(ordered) - 1))], 4), "max_s": round(ordered[-1], 4)}


def serve_under_bombs(files: dict[str, Path], seconds: float, clients: int, threads: int, tmp: Path,
                      only: list[str] | None = None) -> dict:
    model = sh.tiny_onnx(tmp / "tiny.onnx")
    server = sh.ServerProcess(model, "--decode-threads", str(threads), log_path=tmp / "serve.log")
    try:
        for name in corpus.VALID:  # warm-up: imports, pydicom, onnxruntime arenas
            sh.post(server.port, files[name].read_bytes())
        stop = threading.Event()
        idle: list[float] = []
        poller = threading.Thread(target=lambda: idle.extend(health_latencies(server.port, stop)))
        poller.start()
        time.sleep(2.0)
        stop.set()
        poller.join()
        before = sh.vm_mb(server.proc.pid)
        hostile = [files[n].read_bytes() for n in sorted(only or corpus.HOSTILE)]
        statuses: dict[int, int] = {}
        posted = [0]
        lock = threading.Lock()
        stop, busy = threading.Event(), []
        poller = threading.Thread(target=lambda: busy.extend(health_latencies(server.port, stop)))

        def client(k: int) -> None:
            i = k
            while not stop.is_set():
                status, _ = sh.post(server.port, hostile[i % len(hostile)], timeout=120)
                with lock:
                    statuses[status] = statuses.get(status, 0) + 1
                    posted[0] += 1
                i += clients

        workers = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
        poller.start()
        for w in workers:
            w.start()
        time.sleep(seconds)
        stop.set()
        for w in [*workers, poller]:
            w.join()
        after = sh.vm_mb(server.proc.pid)
        valid = [sh.post(server.port, files[n].read_bytes())[0] for n in corpus.VALID]
    finally:
        server.stop()
    return {"decode_threads": threads, "clients": clients, "seconds": seconds, "posted": posted[0],
            "statuses": statuses, "valid_after": valid, "health_idle": summary(idle), "health_under_bombs": summary(busy),
            "rss_mb_before": round(before["VmRSS"], 1), "peak_mb_before": round(before["VmHWM"], 1),
            "peak_mb_during": round(after["VmHWM"], 1), "peak_growth_mb": round(after["VmHWM"] - before["VmHWM"], 1)}


def peak_rss_mb(cmd: list[str]) -> tuple[int, float, str]:
    """(exit status, peak RSS in MB, stderr tail) of a command, from wait4."""
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, env={**os.environ, "PYTHONPATH": str(REPO)})
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        return proc.returncode, usage.ru_maxrss / 1024, err.read().decode(errors="replace")[-400:]


def cli_peaks(files: dict[str, Path], tmp: Path) -> dict:
    from conftest import write_class_tree

    tlearn = [sys.executable, "-m", "tlearn"]
    fit_opts = ["--backbone", "compact_cnn", "--weights", "none", "--image-size", "32", "--num-workers", "0", "--no-progress"]
    out = {}
    for label, extra in (("valid", corpus.VALID), ("valid+hostile", [*corpus.VALID, *corpus.HOSTILE])):
        data = write_class_tree(tmp / f"data_{len(extra)}", {"red": 8, "blue": 8}, size=32)
        for name in extra:
            (data / "red" / name).write_bytes(files[name].read_bytes())
        run = tmp / f"run_{len(extra)}"
        rc, fit_mb, err = peak_rss_mb([*tlearn, "fit", str(data), "--out", str(run), *fit_opts])
        assert rc == 0, err
        images = [str(files[n]) for n in extra]
        rc, predict_mb, err = peak_rss_mb([*tlearn, "predict", str(run), *images])
        assert rc == 0, err
        out[label] = {"files": len(extra), "fit_peak_mb": round(fit_mb), "predict_peak_mb": round(predict_mb)}
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=10.0, help="how long the bombs are posted")
    ap.add_argument("--clients", type=int, default=6, help="clients posting hostile files at once")
    ap.add_argument("--decode-threads", type=int, default=2)
    ap.add_argument("--skip-cli", action="store_true", help="serve only (no fit/predict peaks)")
    ap.add_argument("--only", action="append", choices=sorted(corpus.HOSTILE), help="post only this file (repeatable)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        files = corpus.write_corpus(tmp / "corpus")
        result = {"corpus": {n: files[n].stat().st_size for n in sorted(files)}, "cpus": os.cpu_count(),
                  "serve": serve_under_bombs(files, args.seconds, args.clients, args.decode_threads, tmp, args.only)}
        if not args.skip_cli:
            result["cli"] = cli_peaks(files, tmp)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    s = result["serve"]
    print(f"corpus: {len(corpus.HOSTILE)} hostile files ({min(result['corpus'][n] for n in corpus.HOSTILE)} to "
          f"{max(result['corpus'][n] for n in corpus.HOSTILE)} bytes) and {len(corpus.VALID)} valid; {os.cpu_count()} CPUs")
    print(f"serve, {s['clients']} clients posting them for {s['seconds']:g} s, {s['decode_threads']} decode threads: "
          f"{s['posted']} posts, statuses {s['statuses']}; valid files afterwards {s['valid_after']}")
    for key in ("health_idle", "health_under_bombs"):
        h = s[key]
        print(f"  /health {key.split('_', 1)[1]:>11}: median {h['median_s'] * 1000:.1f} ms, p95 {h['p95_s'] * 1000:.1f} ms,"
              f" max {h['max_s'] * 1000:.1f} ms over {h['n']} calls")
    ratio = s["health_under_bombs"]["max_s"] / max(s["health_idle"]["max_s"], 1e-9)
    print(f"  max /health under bombs {s['health_under_bombs']['max_s']:.3f} s (target < {HEALTH_TARGET_S} s; "
          f"x{ratio:.1f} the idle max)")
    print(f"  server RSS {s['rss_mb_before']:.0f} MB, peak {s['peak_mb_before']:.0f} -> {s['peak_mb_during']:.0f} MB: "
          f"+{s['peak_growth_mb']:.0f} MB (bound {SERVER_GROWTH_BOUND_MB} MB)")
    for label, c in result.get("cli", {}).items():
        print(f"  {label:>14} ({c['files']} DICOM files among 16 PNGs): fit peak {c['fit_peak_mb']} MB, "
              f"predict peak {c['predict_peak_mb']} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
