"""Server memory under hostile images: peak RSS of `python -m tlearn.serve` while N small, hostile PNGs are posted
at once (16-bit and 8-bit 6000x6000 of zeros, ~70-110 KB each; a 177-byte 100000x1 strip; a forged 39M x 1
header).

    python benchmarks/serve_hostile.py [--repo CHECKOUT] [--set mixed|deep16] [--n 8] [--json]

The model is a tiny ONNX classifier built here (mean colour -> 2 classes, tlearn metadata), so what is measured
is decoding and resizing, not inference. --repo runs the server from another checkout (e.g. the code before a
fix); the server process's VmHWM (/proc/PID/status) is read before and after the burst. Linux only.
"""
from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]


# --- hostile images (small files, built in memory) ---

def png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def forged_png(width: int, height: int) -> bytes:
    """A valid 8x8 PNG whose header claims width x height (only the header is ever read if tlearn is careful)."""
    png = bytearray(png_bytes(Image.new("L", (8, 8))))
    ihdr = png[12:29]  # b"IHDR" + 13 bytes of data
    ihdr[4:12] = struct.pack(">II", width, height)
    png[12:29] = ihdr
    png[29:33] = struct.pack(">I", zlib.crc32(bytes(ihdr)) & 0xFFFFFFFF)
    return bytes(png)


def thin_png(width: int = 100_000) -> bytes:
    """A real width x 1 grey PNG (177 bytes for 100000): the short side scaled to the crop size makes it huge."""
    return png_bytes(Image.new("L", (width, 1)))


def deep16_png(side: int = 6000) -> bytes:
    """A side x side 16-bit grey PNG of zeros (~70 KB for 6000): 72 MB decoded, 1.2 GB through float64."""
    return png_bytes(Image.fromarray(np.zeros((side, side), np.uint16)))


def rgb_png(side: int = 6000) -> bytes:
    """A side x side 8-bit RGB PNG of zeros (~110 KB for 6000): 144 MB decoded."""
    return png_bytes(Image.new("RGB", (side, side)))


def eps_bytes() -> bytes:
    """A minimal EPS file: Pillow identifies it as EPS and would run Ghostscript to decode it."""
    return (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 8 8\n%%EndComments\n"
            b"0 0 moveto 8 8 lineto stroke\nshowpage\n%%EOF\n")


def hostile_set(name: str, n: int) -> list[tuple[str, bytes]]:
    """n (file name, bytes): 'mixed' cycles deep16, rgb, thin, forged; 'deep16' is n 16-bit 6000x6000 PNGs."""
    if name == "deep16":
        return [(f"deep16_{i}.png", deep16_png()) for i in range(n)]
    kinds = [("deep16", deep16_png()), ("rgb6000", rgb_png()), ("thin", thin_png()), ("forged", forged_png(39_000_000, 1))]
    return [(f"{kinds[i % 4][0]}_{i}.png", kinds[i % 4][1]) for i in range(n)]


# --- a tiny ONNX classifier with tlearn's metadata ---

def tiny_onnx(path: Path, input_size: int = 224, classes: tuple[str, ...] = ("dark", "light")) -> Path:
    """uint8 (N, S, S, 3) -> softmax over len(classes) of a linear map of the mean colour; tlearn.* metadata."""
    import onnx
    from onnx import TensorProto, helper

    s, k = input_size, len(classes)
    weights = np.linspace(-1, 1, 3 * k, dtype=np.float32).reshape(3, k) / 64.0
    graph = helper.make_graph(
        [helper.make_node("Cast", ["images"], ["x"], to=TensorProto.FLOAT),
         helper.make_node("ReduceMean", ["x"], ["mean"], axes=[1, 2], keepdims=0),
         helper.make_node("MatMul", ["mean", "w"], ["logits"]),
         helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1)],
        "tiny",
        [helper.make_tensor_value_info("images", TensorProto.UINT8, ["N", s, s, 3])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", k])],
        [helper.make_tensor("w", TensorProto.FLOAT, [3, k], weights.ravel().tolist())])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    meta = {"classes": list(classes), "input_size": s, "model_name": "tiny", "tlearn_version": "tiny",
            "data_config": {"input_size": s, "mean": [0.5] * 3, "std": [0.5] * 3, "crop_pct": 0.875,
                            "interpolation": "bicubic", "train_size": None},
            "run": str(path.parent.resolve() / "some_run")}
    for key, value in meta.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = f"tlearn.{key}", json.dumps(value)
    onnx.save(model, str(path))
    return path


# --- the server and its memory ---

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def vm_mb(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM (peak RSS) of a process, in MB."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key = line.split(":")[0]
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(line.split()[1]) / 1024
    return out


def _request(port: int, method: str, path: str, timeout: float, body: bytes | None = None,
             headers: dict | None = None) -> tuple[int, bytes]:
    """(status, body), or (-1, the error) when the server could not be reached or answered nothing."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.read()
    except (OSError, http.client.HTTPException) as exc:
        return -1, repr(exc).encode()
    finally:
        conn.close()


def post(port: int, body: bytes, headers: dict | None = None, path: str = "/predict",
         timeout: float = 120) -> tuple[int, bytes]:
    return _request(port, "POST", path, timeout, body, headers or {"Content-Type": "application/octet-stream"})


def get(port: int, path: str = "/health", timeout: float = 60) -> tuple[int, bytes]:
    return _request(port, "GET", path, timeout)


class ServerProcess:
    """`python -m tlearn.serve MODEL` from a given checkout, on a free loopback port, its output in a file."""

    def __init__(self, model: Path, *extra: str, repo: Path = REPO, module: str = "tlearn.serve",
                 log_path: Path | None = None, timeout: float = 120):
        self.port = free_port()
        env = {**os.environ, "PYTHONPATH": str(repo)}
        self.log_path = log_path or Path(tempfile.mkstemp(prefix="serve-", suffix=".log")[1])
        self._log = open(self.log_path, "w")
        cmd = [sys.executable, "-m", *module.split(), str(model), "--port", str(self.port), *extra]
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, env=env, cwd=str(repo))
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log_path.read_text()[-3000:]}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                conn.request("GET", "/health")
                if conn.getresponse().status == 200:
                    conn.close()
                    return
            except OSError:
                time.sleep(0.3)
        self.stop()
        raise RuntimeError("server did not answer /health in time")

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


def burst(server: ServerProcess, images: list[tuple[str, bytes]]) -> dict:
    """Post all images at once (one request each, released together); peak RSS growth of the server."""
    warm = png_bytes(Image.new("RGB", (300, 200), (120, 80, 40)))
    for _ in range(3):  # warm-up: imports, onnxruntime arenas, allocator pools
        post(server.port, warm)
    before = vm_mb(server.proc.pid)
    statuses: list = [None] * len(images)
    gate = threading.Barrier(len(images))

    def send(i: int) -> None:
        gate.wait()
        statuses[i] = post(server.port, images[i][1])[0]

    t0 = time.perf_counter()
    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(images))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - t0
    after = vm_mb(server.proc.pid)
    return {"n": len(images), "statuses": statuses, "seconds": round(seconds, 2),
            "rss_mb_before": round(before["VmRSS"], 1), "peak_mb_before": round(before["VmHWM"], 1),
            "peak_mb_during": round(after["VmHWM"], 1), "rss_mb_after": round(after["VmRSS"], 1),
            "peak_growth_mb": round(after["VmHWM"] - before["VmHWM"], 1)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repo", default=str(REPO), help="checkout whose tlearn serves (default: this one)")
    ap.add_argument("--set", default="mixed", choices=["mixed", "deep16"])
    ap.add_argument("--n", type=int, default=8, help="images posted at once")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("extra", nargs="*", help="more server flags, after --")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        model = tiny_onnx(Path(tmp) / "tiny.onnx")
        images = hostile_set(args.set, args.n)
        server = ServerProcess(model, *args.extra, repo=Path(args.repo))
        try:
            result = burst(server, images)
        finally:
            server.stop()
    result.update(repo=args.repo, set=args.set, cpus=os.cpu_count(),
                  sizes=sorted({f"{name.split('_')[0]} {len(data)} B" for name, data in images}))
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"{args.repo}: {args.n} hostile PNGs ({', '.join(result['sizes'])}) posted at once, {os.cpu_count()} CPUs")
        print(f"  statuses {result['statuses']} in {result['seconds']} s")
        print(f"  server RSS before {result['rss_mb_before']:.0f} MB (peak so far {result['peak_mb_before']:.0f} MB); "
              f"peak during the burst {result['peak_mb_during']:.0f} MB: +{result['peak_growth_mb']:.0f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
