"""tlearn serve RUN|FILE [--host 127.0.0.1] [--port 8000] [limits]"""
from __future__ import annotations

from ..serve.arguments import add_arguments, run
from . import examples


def register(sub) -> None:
    p = sub.add_parser("serve", help="HTTP prediction service and web page for a run or an exported .onnx file",
                       **examples("tlearn serve runs/flowers        # http://127.0.0.1:8000",
                                  "tlearn serve runs/flowers/exports/model.onnx --port 9000"))
    add_arguments(p)
    p.set_defaults(func=run)
