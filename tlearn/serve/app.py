"""The FastAPI app: predict, health, labels, metadata and the web page, with limits on what it accepts."""
from __future__ import annotations

import logging
import os
import time
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path

import numpy as np
from fastapi import FastAPI, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse

from ..runtime import Classifier, ImageError
from .batcher import MicroBatcher
from .limits import BodySizeLimit, BodyTooLarge

log = logging.getLogger("tlearn")

STATUS = {"not_image": 415, "corrupt": 400, "too_large": 400}


@dataclass
class ServeSettings:
    host: str = "127.0.0.1"
    port: int = 8000
    max_body_bytes: int = 20 * 2**20
    max_pixels: int = 40_000_000
    max_files: int = 32
    max_batch: int = 8
    batch_wait_ms: float = 2.0
    threads: int | None = None
    limit_concurrency: int = 256


def rss_mb() -> float:
    """Resident memory of this process in MB (Linux /proc; peak RSS elsewhere)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def error(status: int, code: str, detail: str, file: str | None = None) -> JSONResponse:
    body = {"error": code, "detail": detail}
    if file is not None:
        body["file"] = file
    return JSONResponse(body, status_code=status)


def create_app(model_path: str | Path, settings: ServeSettings | None = None) -> FastAPI:
    """An ASGI app serving one exported ONNX model."""
    settings = settings or ServeSettings()
    clf = Classifier(model_path, threads=settings.threads, max_pixels=settings.max_pixels)
    batcher = MicroBatcher(clf.probabilities, settings.max_batch, settings.batch_wait_ms)
    stats = {"started": time.time(), "requests": 0, "images": 0, "client_errors": 0, "server_errors": 0,
             "rss_mb_start": rss_mb()}
    model_name = clf.metadata.get("model_name", Path(model_path).stem)
    page = resources.files(__package__).joinpath("static/index.html").read_text()

    @asynccontextmanager
    async def lifespan(app):
        await batcher.start()
        log.info("serving %s (%d classes, %d px) from %s", model_name, len(clf.classes), clf.input_size, model_path)
        yield
        await batcher.stop()

    app = FastAPI(title="tlearn prediction service", version=str(clf.metadata.get("tlearn_version", "")),
                  description=f"Image classifier {model_name}: POST images to /predict.", lifespan=lifespan)

    @app.exception_handler(BodyTooLarge)
    async def too_large(request: Request, exc: BodyTooLarge):
        stats["client_errors"] += 1
        return error(413, "too_large", f"request body over {settings.max_body_bytes} bytes; send fewer or "
                     "smaller images")

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception):  # never a bare 500 page; the server keeps serving
        stats["server_errors"] += 1
        log.exception("error while serving %s", request.url.path)
        return error(500, "internal", f"{type(exc).__name__}: {exc}")

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index() -> HTMLResponse:
        return HTMLResponse(page)

    @app.get("/health", summary="liveness and counters")
    async def health() -> dict:
        return {"status": "ok", "model": model_name, "uptime_s": round(time.time() - stats["started"], 3),
                "rss_mb": round(rss_mb(), 1), "pid": os.getpid(), "batches": batcher.batches,
                **{k: v for k, v in stats.items() if k != "started"}}

    @app.get("/labels", summary="class names in output order")
    async def labels() -> dict:
        return {"labels": clf.classes}

    @app.get("/metadata", summary="what the model file says about itself, and the server's limits")
    async def metadata() -> dict:
        return {**clf.metadata, "model_file": str(model_path), "model_name": model_name,
                "limits": {k: v for k, v in asdict(settings).items() if k not in ("host", "port")}}

    @app.post("/predict", summary="top-k classes for one or several images",
              description="Send images as multipart/form-data (any field name, one or several files) or one "
                          "image as the raw request body. 413: body too large; 415: not an image; 400: corrupt, "
                          "truncated or too many pixels.",
              openapi_extra={"requestBody": {"content": {
                  "multipart/form-data": {"schema": {"type": "object", "properties": {
                      "file": {"type": "array", "items": {"type": "string", "format": "binary"}}}}},
                  "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}})
    async def predict(request: Request, k: int = Query(5, ge=1, le=1000)):
        start = time.perf_counter()
        stats["requests"] += 1
        files = await _read_images(request, settings)
        if isinstance(files, JSONResponse):
            stats["client_errors"] += 1
            return files
        arrays = []
        for name, data in files:
            try:
                arrays.append(await run_in_threadpool(clf.prepare, data))
            except ImageError as exc:
                stats["client_errors"] += 1
                return error(STATUS[exc.kind], exc.kind, str(exc), name)
        probs = await batcher.submit(np.stack(arrays))
        stats["images"] += len(arrays)
        preds = clf.top_k(probs, k)
        return {"model": model_name,
                "predictions": [{"file": name, **p.to_dict()} for (name, _), p in zip(files, preds)],
                "seconds": round(time.perf_counter() - start, 4)}

    return BodySizeLimit(app, settings.max_body_bytes) if settings.max_body_bytes else app


async def _read_images(request: Request, settings: ServeSettings) -> list[tuple[str, bytes]] | JSONResponse:
    """(name, bytes) per image from a multipart form or a raw body; a JSON error response otherwise."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "multipart/form-data":
        try:
            async with request.form(max_files=settings.max_files, max_fields=settings.max_files) as form:
                files = []
                for _, value in form.multi_items():
                    if hasattr(value, "read"):
                        files.append((value.filename or "upload", await value.read()))
        except BodyTooLarge:
            raise
        except Exception as exc:  # malformed multipart, too many parts
            return error(400, "bad_request", f"could not read the multipart body: {exc}")
        if not files:
            return error(400, "no_image", "the multipart body has no file parts; send images as files")
        return files
    if ctype in ("application/x-www-form-urlencoded", "application/json") or ctype.startswith("text/"):
        return error(415, "not_image", f"Content-Type {ctype} is not an image; send image bytes or multipart files")
    body = await request.body()
    if not body:
        return error(400, "no_image", "empty request body; send an image")
    return [("body", body)]


def serve(model: str | Path, settings: ServeSettings | None = None) -> None:
    """Resolve RUN|FILE to an ONNX file and serve it with uvicorn until interrupted."""
    import uvicorn

    from .model_source import resolve_model

    settings = settings or ServeSettings()
    app = create_app(resolve_model(model), settings)
    if settings.host not in ("127.0.0.1", "localhost", "::1"):
        log.warning("binding %s: the service is reachable from other machines and has no authentication",
                    settings.host)
    log.info("open http://%s:%d/ (API docs at /docs)", settings.host, settings.port)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="warning",
                limit_concurrency=settings.limit_concurrency, timeout_keep_alive=5, access_log=False)
