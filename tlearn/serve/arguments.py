"""The service's command-line arguments, shared by `tlearn serve` and `python -m tlearn.serve` (no torch, no web
stack until run)."""
from __future__ import annotations


def add_arguments(p) -> None:
    p.add_argument("model", help="run directory (exported to ONNX on first use) or an exported .onnx file")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1, this machine only)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--max-body-mb", type=float, default=20.0, help="refuse larger request bodies with 413")
    p.add_argument("--max-pixels", type=int, default=40_000_000,
                   help="refuse images with more pixels (decompression bombs) with 400")
    p.add_argument("--max-batch", type=int, default=8, help="batch up to this many concurrent images (1: off)")
    p.add_argument("--batch-wait-ms", type=float, default=2.0,
                   help="how long a request waits for others to share its batch")
    p.add_argument("--threads", type=int, default=None, help="onnxruntime intra-op threads (default: all cores)")


def run(args) -> int:
    from .app import ServeSettings, serve

    serve(args.model, ServeSettings(host=args.host, port=args.port, max_body_bytes=int(args.max_body_mb * 2**20),
                                    max_pixels=args.max_pixels, max_batch=args.max_batch,
                                    batch_wait_ms=args.batch_wait_ms, threads=args.threads))
    return 0
