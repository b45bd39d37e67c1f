"""The service's command-line arguments, shared by `tlearn serve` and `python -m tlearn.serve` (no torch, no web
stack until run)."""
from __future__ import annotations


def add_arguments(p) -> None:
    from .settings import ServeSettings

    d = ServeSettings()
    p.add_argument("model", help="run directory (exported to ONNX on first use) or an exported .onnx file")
    p.add_argument("--host", default=d.host, help=f"address to bind (default {d.host}, this machine only)")
    p.add_argument("--port", type=int, default=d.port)
    p.add_argument("--max-body-mb", type=float, default=d.max_body_bytes / 2**20,
                   help="refuse larger request bodies with 413")
    p.add_argument("--max-pixels", type=int, default=d.max_pixels,
                   help="refuse images with more pixels (decompression bombs) with 400")
    p.add_argument("--max-request-pixels", type=int, default=d.max_request_pixels,
                   help="refuse requests whose images have more pixels together with 400")
    p.add_argument("--max-concurrency", type=int, default=d.max_concurrency,
                   help="requests handled at once; more are answered 503 (busy) at once")
    p.add_argument("--decode-threads", type=int, default=d.decode_threads,
                   help="images decoded at once (default: one per core); bounds the memory decoding takes")
    p.add_argument("--upload-timeout", type=float, default=d.upload_timeout_s, metavar="SECONDS",
                   help="a request body must arrive within this many seconds; slower uploads get 408")
    p.add_argument("--decode-timeout", type=float, default=d.decode_timeout_s, metavar="SECONDS",
                   help="an image must be read and decoded within this many seconds after it arrived (waiting for a "
                        "decode thread included); slower ones get 503")
    p.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                   help="also accept this Host name when bound to localhost (e.g. behind a reverse proxy); "
                        "other names are refused (DNS rebinding)")
    p.add_argument("--max-batch", type=int, default=d.max_batch, help="batch up to this many concurrent images (1: off)")
    p.add_argument("--batch-wait-ms", type=float, default=d.batch_wait_ms,
                   help="how long a request waits for others to share its batch")
    p.add_argument("--explain", action="store_true",
                   help="the page also shows a heatmap of where the model looks (POST /explain; needs a run "
                        "directory and torch; one heatmap at a time)")
    p.add_argument("--threads", type=int, default=d.threads, help="onnxruntime intra-op threads (default: all cores)")


def run(args) -> int:
    from . import ServeSettings, serve

    serve(args.model, ServeSettings(host=args.host, port=args.port, max_body_bytes=int(args.max_body_mb * 2**20),
                                    max_pixels=args.max_pixels, max_request_pixels=args.max_request_pixels,
                                    max_concurrency=args.max_concurrency, decode_threads=args.decode_threads,
                                    upload_timeout_s=args.upload_timeout, decode_timeout_s=args.decode_timeout,
                                    allowed_hosts=tuple(args.allow_host),
                                    max_batch=args.max_batch, batch_wait_ms=args.batch_wait_ms, threads=args.threads,
                                    explain=args.explain))
    return 0
