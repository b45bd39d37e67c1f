"""HTTP prediction service for an exported model (FastAPI + uvicorn + onnxruntime; no torch when given .onnx).

    tlearn serve RUN|MODEL.onnx [--host 127.0.0.1] [--port 8000]

POST /predict (multipart files or raw image bytes) -> top-k labels; GET /health, /labels, /metadata;
/docs (OpenAPI); a web page at /.

The names are imported on first use (PEP 562), so that parsing `tlearn serve` arguments loads no web stack.
"""
from __future__ import annotations

import importlib

_LAZY = {"ServeSettings": ".app", "create_app": ".app", "serve": ".app", "resolve_model": ".model_source"}

__all__ = list(_LAZY)


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'tlearn.serve' has no attribute {name!r}")
    return getattr(importlib.import_module(_LAZY[name], __name__), name)
