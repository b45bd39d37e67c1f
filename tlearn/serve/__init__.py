"""HTTP prediction service for an exported model (FastAPI + uvicorn + onnxruntime; no torch when given .onnx).

    tlearn serve RUN|MODEL.onnx [--host 127.0.0.1] [--port 8000]

POST /predict (multipart files or raw image bytes) -> top-k labels; GET /health, /labels, /metadata;
/docs (OpenAPI); a web page at /. With --explain (a run directory): POST /explain -> a heatmap (serve/explain.py).
"""
from __future__ import annotations

from .settings import ServeSettings

__all__ = ["ServeSettings", "create_app", "serve", "resolve_model"]


def __getattr__(name: str):  # FastAPI and the model code load on first use, not when the CLI reads its defaults
    if name in ("create_app", "serve"):
        from . import app

        return getattr(app, name)
    if name == "resolve_model":
        from .model_source import resolve_model

        return resolve_model
    raise AttributeError(name)
