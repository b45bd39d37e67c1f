"""HTTP prediction service for an exported model (FastAPI + uvicorn + onnxruntime; no torch when given .onnx).

    tlearn serve RUN|MODEL.onnx [--host 127.0.0.1] [--port 8000]

POST /predict (multipart files or raw image bytes) -> top-k labels; GET /health, /labels, /metadata;
/docs (OpenAPI); a web page at /.
"""
from .app import ServeSettings, create_app, serve
from .model_source import resolve_model

__all__ = ["ServeSettings", "create_app", "serve", "resolve_model"]
