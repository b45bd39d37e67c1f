"""A hymenoptera run and its exports, built once per test session and shared by test_export_* and test_serve_*.

Cached on disk under the session's base temp folder, so several test modules reuse one fit and one export.
"""
from __future__ import annotations

import io
import socket
import struct
import http.client
import subprocess
import sys
import time
import zlib
from pathlib import Path

from PIL import Image


def hymenoptera_run(base: Path, data: Path) -> Path:
    """Linear probe on the whole hymenoptera train split (val 153 images), the issue's reference run."""
    out = base / "hym_run"
    if not (out / "model.safetensors").is_file():
        from tlearn import fit

        fit(data, out, progress=False)
    return out


def exported_onnx(base: Path, data: Path) -> Path:
    from tlearn.export import export_run

    path = base / "hym.onnx"
    if not path.is_file():
        export_run(hymenoptera_run(base, data), "onnx", path)
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`python -m tlearn.serve MODEL` in a subprocess on a free loopback port."""

    def __init__(self, model: Path, *extra: str, timeout: float = 120.0):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen([sys.executable, "-m", "tlearn.serve", str(model), "--port", str(self.port),
                                      *extra], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.proc.stdout.read()}")
            try:
                if self.get("/health")[0] == 200:
                    return
            except OSError:
                time.sleep(0.3)
        self.stop()
        raise RuntimeError("server did not answer /health in time")

    def request(self, path: str, data: bytes | None = None, headers: dict | None = None,
                method: str | None = None) -> tuple[int, bytes]:
        # http.client rather than urllib: a server may answer (e.g. 413) and close while a large body is still
        # being sent; like curl, read the answer it already wrote instead of failing on the broken pipe.
        host, port = self.url.removeprefix("http://").split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=60)
        try:
            try:
                conn.request(method or ("POST" if data is not None else "GET"), path, body=data,
                             headers=headers or {})
            except (BrokenPipeError, ConnectionResetError):
                pass
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    def get(self, path: str) -> tuple[int, bytes]:
        return self.request(path)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def multipart(files: list[tuple[str, bytes, str]]) -> tuple[bytes, dict]:
    """(body, headers) for a multipart/form-data POST of (filename, bytes, content type) files."""
    boundary = "tlearn-test-boundary-7d1f"
    parts = []
    for name, data, ctype in files:
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
                     f"Content-Type: {ctype}\r\n\r\n".encode() + data + b"\r\n")
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    return body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}


def png_bomb(width: int = 60_000, height: int = 60_000) -> bytes:
    """A small valid PNG whose header claims width x height pixels (decodes to gigabytes if trusted)."""
    buf = io.BytesIO()
    Image.new("L", (8, 8)).save(buf, format="PNG")
    png = bytearray(buf.getvalue())
    ihdr = png[12:29]  # b"IHDR" + 13 bytes of data
    ihdr[4:12] = struct.pack(">II", width, height)
    png[12:29] = ihdr
    png[29:33] = struct.pack(">I", zlib.crc32(bytes(ihdr)) & 0xFFFFFFFF)
    return bytes(png)
