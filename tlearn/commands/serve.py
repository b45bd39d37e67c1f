"""tlearn serve RUN|FILE [--host 127.0.0.1] [--port 8000]"""
from __future__ import annotations

from ..serve.arguments import add_arguments, run


def register(sub) -> None:
    p = sub.add_parser("serve", help="HTTP prediction service and web page for a run or an exported .onnx file")
    add_arguments(p)
    p.set_defaults(func=run)
