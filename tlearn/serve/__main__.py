"""python -m tlearn.serve MODEL.onnx [--host ...] [--port ...]: the service without loading the whole CLI (no torch)."""
from __future__ import annotations

import argparse
import logging
import sys

from .arguments import add_arguments, run
from ..errors import TlearnError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tlearn.serve", description="tlearn prediction service")
    add_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    try:
        return run(args)
    except TlearnError as exc:
        print(f"tlearn: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
