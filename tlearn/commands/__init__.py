"""One module per CLI subcommand."""
from __future__ import annotations


def examples(*lines: str) -> dict:
    """add_parser keyword arguments for an 'examples:' epilog in --help that keeps its line breaks, and the
    formatter that shows every option's default."""
    from .options import HelpFormatter

    return {"epilog": "examples:\n" + "".join(f"  {line}\n" for line in lines), "formatter_class": HelpFormatter}
