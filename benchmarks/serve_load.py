"""Load test of `tlearn serve` on loopback: N concurrent clients for a bounded time.

Prints requests/s, p50/p95/p99 latency, errors and the server's memory at start and end, for each server
configuration compared in the same run (by default micro-batching on vs off, so the batching default is
justified by a measurement on this machine).

    python benchmarks/serve_load.py MODEL.onnx|RUN --clients 16 --seconds 30 [--images DIR] [--compare]

The server is started here as `python -m tlearn.serve` on a free 127.0.0.1 port and stopped at the end.
"""
from __future__ import annotations

import argparse
import http.client
import json
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}
DEFAULT_IMAGES = Path(__file__).resolve().parents[2] / "shared" / "data" / "hymenoptera" / "val"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_json(port: int, path: str) -> dict:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", path)
        return json.loads(conn.getresponse().read())
    finally:
        conn.close()


def start_server(model: str, extra: list[str]) -> tuple[subprocess.Popen, int]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "tlearn.serve", model, "--port", str(port), *extra],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        try:
            get_json(port, "/health")
            return proc, port
        except OSError:
            time.sleep(0.3)
    proc.kill()
    raise SystemExit("server did not start")


def client(port: int, images: list[bytes], stop_at: float, offset: int, latencies: list, errors: list) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    i = offset
    while time.perf_counter() < stop_at:
        body = images[i % len(images)]
        i += 1
        t0 = time.perf_counter()
        try:
            conn.request("POST", "/predict?k=1", body=body, headers={"Content-Type": "image/jpeg"})
            resp = conn.getresponse()
            resp.read()
            if resp.status != 200:
                errors.append(resp.status)
                continue
            latencies.append(time.perf_counter() - t0)
        except (OSError, http.client.HTTPException) as exc:
            errors.append(type(exc).__name__)
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.close()


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def load(model: str, extra: list[str], images: list[bytes], clients: int, seconds: float, label: str) -> dict:
    proc, port = start_server(model, extra)
    try:
        for body in images[:3]:  # warm-up, not measured
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            conn.request("POST", "/predict", body=body, headers={"Content-Type": "image/jpeg"})
            conn.getresponse().read()
            conn.close()
        start_health = get_json(port, "/health")
        latencies: list[float] = []
        errors: list = []
        t0 = time.perf_counter()
        stop_at = t0 + seconds
        threads = [threading.Thread(target=client, args=(port, images, stop_at, k * 7, latencies, errors))
                   for k in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - t0
        end_health = get_json(port, "/health")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    done = end_health["images"] - start_health["images"]
    batches = end_health["batches"] - start_health["batches"]
    return {
        "config": label, "clients": clients, "seconds": round(elapsed, 1), "requests": len(latencies),
        "requests_per_s": round(len(latencies) / elapsed, 2), "errors": len(errors),
        "p50_ms": round(1000 * percentile(latencies, 50), 1) if latencies else None,
        "p95_ms": round(1000 * percentile(latencies, 95), 1) if latencies else None,
        "p99_ms": round(1000 * percentile(latencies, 99), 1) if latencies else None,
        "mean_batch": round(done / batches, 2) if batches else None,
        "rss_mb_start": start_health["rss_mb"], "rss_mb_end": end_health["rss_mb"],
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", help="exported .onnx file or run directory")
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--images", default=None, help="folder of JPEGs to send (default: the run's val images)")
    ap.add_argument("--max-images", type=int, default=64)
    ap.add_argument("--compare", action="store_true", help="also run with batching off (--max-batch 1)")
    ap.add_argument("--max-batch", type=int, default=8)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    folder = Path(args.images) if args.images else DEFAULT_IMAGES
    paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)[: args.max_images]
    if not paths:
        raise SystemExit(f"no images under {folder}; pass --images DIR")
    images = [p.read_bytes() for p in paths]
    configs = [(f"batching (max-batch {args.max_batch})", ["--max-batch", str(args.max_batch)])]
    if args.compare:
        configs.append(("no batching (max-batch 1)", ["--max-batch", "1"]))
    results = [load(args.model, extra, images, args.clients, args.seconds, label) for label, extra in configs]
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print(f"{len(images)} images from {folder}, {args.clients} clients, {args.seconds:.0f} s each, loopback")
        for r in results:
            print(f"{r['config']:<28} {r['requests_per_s']:7.2f} req/s  p50 {r['p50_ms']} ms  p95 {r['p95_ms']} ms  "
                  f"p99 {r['p99_ms']} ms  errors {r['errors']}  mean batch {r['mean_batch']}  "
                  f"server RSS {r['rss_mb_start']:.0f} -> {r['rss_mb_end']:.0f} MB")
        if len(results) == 2 and results[1]["requests_per_s"]:
            print(f"batching / no batching throughput: x{results[0]['requests_per_s'] / results[1]['requests_per_s']:.2f}")
    return 1 if any(r["errors"] for r in results) else 0


if __name__ == "__main__":
    raise SystemExit(main())
