"""The FastAPI app: predict, health, labels, metadata and the web page, with limits on what it accepts."""
from __future__ import annotations

import asyncio
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import asdict
from importlib import resources
from pathlib import Path

import numpy as np
from fastapi import FastAPI, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse

from ..runtime import IMAGE_FORMATS, MAX_ASPECT_RATIO, Classifier, ImageError, image_size
from .batcher import MicroBatcher
from .limits import LOOPBACK_HOSTS, Refusal, RequestGuard, allowed_hosts
from .settings import ServeSettings

log = logging.getLogger("tlearn")

STATUS = {"not_image": 415, "corrupt": 400, "too_large": 400}
# What a client is told per ImageError kind; the exception's own text goes to the server log only.
IMAGE_DETAIL = {
    "not_image": f"not an image this server reads ({', '.join(IMAGE_FORMATS)}, and DICOM with tlearn[dicom])",
    "corrupt": "the image is corrupt or truncated, or a DICOM attribute it needs (LUT, window, rescale) is malformed",
    "too_large": f"the image has too many pixels or is too thin (aspect ratio over {MAX_ASPECT_RATIO}:1); "
                 "see the limits in /metadata",
}


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


def request_id(request: Request) -> str:
    return request.scope.get("state", {}).get("request_id", "-")


def error(request: Request, status: int, code: str, detail: str, file: str | None = None,
          log_detail: str | None = None) -> JSONResponse:
    """A JSON error with the request's id; detail is a fixed text for the client, log_detail goes to the log."""
    rid = request_id(request)
    log.info("request %s: %d %s%s: %s", rid, status, code, f" ({file})" if file else "", log_detail or detail)
    body = {"error": code, "detail": detail, "request_id": rid}
    if file is not None:
        body["file"] = file
    return JSONResponse(body, status_code=status)


def public_metadata(metadata: dict) -> dict:
    """The model's metadata without absolute paths of the machine that exported it (file names stay)."""
    return {k: (Path(v).name if isinstance(v, str) and os.path.isabs(v) else v) for k, v in metadata.items()}


def create_app(model_path: str | Path, settings: ServeSettings | None = None, run_dir: str | Path | None = None):
    """An ASGI app serving one exported ONNX model, behind the request guard (see limits.RequestGuard).

    settings.explain: also POST /explain and heatmaps on the page, drawn by run_dir's torch model."""
    settings = settings or ServeSettings()
    explainer = None
    if settings.explain:
        from .explain import ExplainService

        explainer = ExplainService(run_dir if run_dir is not None else model_path, settings.max_pixels)
    clf = Classifier(model_path, threads=settings.threads, max_pixels=settings.max_pixels)
    batcher = MicroBatcher(clf.probabilities, settings.max_batch, settings.batch_wait_ms)
    decoder = DecodePool(settings.decode_threads or os.cpu_count() or 1, settings.decode_timeout_s)
    stats = {"started": time.time(), "requests": 0, "images": 0, "client_errors": 0, "server_errors": 0,
             "rss_mb_start": rss_mb()}
    model_name = clf.metadata.get("model_name", Path(model_path).stem)
    page = resources.files(__package__).joinpath("static/index.html").read_text()
    if explainer is not None:  # the page asks /explain only when the server offers it
        page = page.replace("<body>", '<body data-explain="1">', 1)

    @asynccontextmanager
    async def lifespan(app):
        await batcher.start()
        log.info("serving %s (%d classes, %d px) from %s", model_name, len(clf.classes), clf.input_size, model_path)
        yield
        await batcher.stop()
        decoder.shutdown()

    app = FastAPI(title="tlearn prediction service", version=str(clf.metadata.get("tlearn_version", "")),
                  description=f"Image classifier {model_name}: POST images to /predict.", lifespan=lifespan)

    @app.exception_handler(Refusal)
    async def refused(request: Request, exc: Refusal):
        stats["client_errors"] += 1
        response = error(request, exc.status, exc.code, exc.detail)
        response.headers["connection"] = "close"  # the rest of the body is not read
        return response

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception):  # never a bare 500 page; the server keeps serving
        stats["server_errors"] += 1
        log.error("request %s: error while serving %s", request_id(request), request.url.path, exc_info=exc)
        return error(request, 500, "internal", "internal error; the server log has the details under this "
                     "request id")

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index() -> HTMLResponse:
        return HTMLResponse(page)

    @app.get("/health", summary="liveness and counters")
    async def health() -> dict:
        return {"status": "ok", "model": model_name, "uptime_s": round(time.time() - stats["started"], 3),
                "rss_mb": round(rss_mb(), 1), "batches": batcher.batches,
                **{k: v for k, v in stats.items() if k != "started"}}

    @app.get("/labels", summary="class names in output order")
    async def labels() -> dict:
        return {"labels": clf.classes}

    @app.get("/metadata", summary="what the model file says about itself, and the server's limits")
    async def metadata() -> dict:
        return {**public_metadata(clf.metadata), "model_file": Path(model_path).name, "model_name": model_name,
                "limits": {k: v for k, v in asdict(settings).items()
                           if k not in ("host", "port", "allowed_hosts", "threads", "limit_concurrency", "explain")}}

    @app.post("/predict", summary="top-k classes for one or several images",
              description="Send images as multipart/form-data (any field name, one or several files) or one "
                          "image as the raw request body. 413: body too large; 415: not an image; 400: corrupt, "
                          "truncated, too many pixels or too thin; 408: upload too slow; 403: foreign Host or "
                          "Origin; 503: busy. Every answer carries an X-Request-ID that the server log repeats.",
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
        arrays, pixels = [], 0
        for name, data in files:
            try:
                size, array = await decoder.run(_probe_and_prepare, clf, data,
                                                settings.max_request_pixels - pixels)
            except ImageError as exc:
                stats["client_errors"] += 1
                return error(request, STATUS[exc.kind], exc.kind, IMAGE_DETAIL[exc.kind], name, str(exc))
            except DecodeTimeout as exc:
                stats["client_errors"] += 1
                return busy(request, str(exc), name)
            pixels += size
            if array is None:
                stats["client_errors"] += 1
                return error(request, 400, "too_large", f"the images of one request may have at most "
                             f"{settings.max_request_pixels} pixels together; send fewer per request", name)
            arrays.append(array)
        probs = await batcher.submit(np.stack(arrays))
        stats["images"] += len(arrays)
        preds = clf.top_k(probs, k)
        return {"model": model_name,
                "predictions": [{"file": name, **p.to_dict(probabilities=clf.multilabel)}
                                for (name, _), p in zip(files, preds)],
                "seconds": round(time.perf_counter() - start, 4)}

    if explainer is not None:
        @app.post("/explain", summary="heatmap of where the model looks, for one image",
                  description="One image, as for /predict. Answers the predicted class and a PNG data: URI of the "
                              "class-activation heatmap over the eval crop. One at a time: 503 while another runs.")
        async def explain(request: Request):
            stats["requests"] += 1
            files = await _read_images(request, settings)
            if isinstance(files, JSONResponse):
                stats["client_errors"] += 1
                return files
            if len(files) != 1:
                stats["client_errors"] += 1
                return error(request, 400, "one_image", "send one image per /explain request")
            name, data = files[0]
            try:
                body = await decoder.run(_probe_and_explain, explainer, name, data)
            except ImageError as exc:
                stats["client_errors"] += 1
                return error(request, STATUS[exc.kind], exc.kind, IMAGE_DETAIL[exc.kind], name, str(exc))
            except DecodeTimeout as exc:
                stats["client_errors"] += 1
                return busy(request, str(exc), name)
            if body is None:
                return JSONResponse({"error": "busy", "detail": "another heatmap is being drawn; retry shortly",
                                     "request_id": request_id(request)}, status_code=503,
                                    headers={"retry-after": "1"})
            stats["images"] += 1
            return body

    return RequestGuard(app, max_body_bytes=settings.max_body_bytes, upload_timeout_s=settings.upload_timeout_s,
                        max_concurrency=settings.max_concurrency,
                        hosts=allowed_hosts(settings.host, settings.port, settings.allowed_hosts))


class DecodeTimeout(Exception):
    """An image was not probed and decoded within the decode deadline."""


class DecodePool:
    """Size probing and decoding, off the event loop: at most `threads` images at once (bounding their memory),
    each answered within timeout_s of its submission. A decode past its deadline keeps its thread until it ends
    (Python threads cannot be stopped), so the pool's bound holds; only the request stops waiting for it."""

    def __init__(self, threads: int, timeout_s: float):
        self.timeout_s = timeout_s
        self._pool = ThreadPoolExecutor(max_workers=max(1, threads), thread_name_prefix="tlearn-decode")

    async def run(self, fn, *args):
        """fn(*args) in the pool; its ImageError is raised here afresh, without the worker's traceback: that one
        refers to the worker's frames (the upload's bytes) and, through the futures, forms a cycle that only the
        garbage collector would free, so refused uploads would pile up in memory."""
        future = asyncio.get_running_loop().run_in_executor(self._pool, _image_error_as_value, fn, *args)
        try:
            result = await asyncio.wait_for(future, self.timeout_s)
        except asyncio.TimeoutError:
            raise DecodeTimeout(f"the image was not read and decoded within {self.timeout_s:g} s") from None
        finally:
            del future
        if isinstance(result, _Refused):
            raise ImageError(result.message, result.kind)
        return result

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


class _Refused:
    def __init__(self, exc: ImageError):
        self.message, self.kind = str(exc), exc.kind


def _image_error_as_value(fn, *args):
    try:
        return fn(*args)
    except ImageError as exc:
        return _Refused(exc)


def _probe_and_prepare(clf: Classifier, data: bytes, pixel_budget: int) -> tuple[int, np.ndarray | None]:
    """(pixels, model input) of one upload, its size read from its header first: (pixels, None) when that is over
    the request's remaining pixel budget. Runs in the decode pool, never on the event loop."""
    width, height = image_size(data)
    if width * height > pixel_budget:
        return width * height, None
    return width * height, clf.prepare(data)


def _probe_and_explain(explainer, name: str, data: bytes):
    image_size(data)
    return explainer.explain(name, data)


def busy(request: Request, log_detail: str, file: str | None = None) -> JSONResponse:
    response = error(request, 503, "busy", "the image was not decoded in time (the server is busy, or the image is "
                     "slow to decode); retry shortly", file, log_detail)
    response.headers["retry-after"] = "1"
    return response


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
        except Refusal:
            raise
        except Exception as exc:  # malformed multipart, too many parts
            return error(request, 400, "bad_request", "could not read the multipart body", log_detail=repr(exc))
        if not files:
            return error(request, 400, "no_image", "the multipart body has no file parts; send images as files")
        return files
    if ctype in ("application/x-www-form-urlencoded", "application/json") or ctype.startswith("text/"):
        return error(request, 415, "not_image", "this Content-Type is not an image; send image bytes or "
                     "multipart files", log_detail=f"Content-Type {ctype}")
    body = await request.body()
    if not body:
        return error(request, 400, "no_image", "empty request body; send an image")
    return [("body", body)]


def serve(model: str | Path, settings: ServeSettings | None = None) -> None:
    """Resolve RUN|FILE to an ONNX file and serve it with uvicorn until interrupted."""
    import uvicorn

    from .model_source import resolve_model

    settings = settings or ServeSettings()
    app = create_app(resolve_model(model), settings, run_dir=model)
    if settings.host not in LOOPBACK_HOSTS:
        log.warning("binding %s: the service is reachable from other machines and has no authentication",
                    settings.host)
    log.info("open http://%s:%d/ (API docs at /docs)", settings.host, settings.port)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="warning",
                limit_concurrency=settings.limit_concurrency, timeout_keep_alive=5, access_log=False)
