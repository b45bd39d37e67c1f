"""The `tlearn` command: a thin layer that parses arguments and calls the Python API.

Each subcommand lives in tlearn/commands/<name>.py with `register(subparsers)` that adds its parser and
sets `func`; add a module to COMMANDS to add a subcommand.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import sys

from ._version import __version__
from .commands.options import HelpFormatter
from .errors import TlearnError

COMMANDS = ["fit", "evaluate", "predict", "backbones", "demo", "study", "report", "compare", "distill", "export",
            "serve", "doctor", "explain", "rank", "extend", "incremental", "select", "cache"]


QUIET_HELP = "only warnings and results"


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser; with `only`, just that subcommand's module is imported. Building it imports no torch."""
    parser = argparse.ArgumentParser(prog="tlearn", description="Transfer learning for image recognition.",
                                     formatter_class=HelpFormatter)
    parser.add_argument("-q", "--quiet", action="store_true", help=QUIET_HELP)
    parser.add_argument("--version", action="version", version=f"tlearn {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in [only] if only in COMMANDS else COMMANDS:
        importlib.import_module(f"tlearn.commands.{name}").register(sub)
    for command in sub.choices.values():  # -q also after the command; SUPPRESS keeps a -q given before it
        command.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS, help=QUIET_HELP)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    command = next((a for a in argv if not a.startswith("-")), None)
    args = build_parser(only=command).parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(message)s",
                        stream=sys.stderr)
    try:
        code = int(args.func(args) or 0)
        if "torch.distributed" in sys.modules:  # a torchrun process leaves its group (nccl warns otherwise)
            from .train.distributed import leave

            leave()
        return code
    except TlearnError as exc:
        print(f"tlearn: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("tlearn: interrupted", file=sys.stderr)
        return 130
