"""The service's settings and their defaults (no FastAPI import: the CLI reads its defaults from here)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class ServeSettings:
    host: str = "127.0.0.1"
    port: int = 8000
    max_body_bytes: int = 20 * 2**20
    max_pixels: int = 40_000_000  # per image, from its header
    max_request_pixels: int = 100_000_000  # all images of one request together
    max_files: int = 32
    max_batch: int = 8
    batch_wait_ms: float = 2.0
    threads: int | None = None
    max_concurrency: int = 32  # requests in progress at once; more get 503
    decode_threads: int | None = None  # images decoded at once (None: one per core); bounds decoding memory
    upload_timeout_s: float = 30.0  # a request body must have arrived this long after the request started
    decode_timeout_s: float = 30.0  # an image must be probed and decoded this long after it was received (503)
    allowed_hosts: tuple[str, ...] = ()  # Host names accepted besides localhost when bound to a loopback address
    limit_concurrency: int = 256  # open connections (uvicorn)
    explain: bool = False  # POST /explain and heatmaps on the page (needs the run directory and torch)
