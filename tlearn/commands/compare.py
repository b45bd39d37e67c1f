"""tlearn compare RUN RUN ... [--out compare.html] [--json]"""
from __future__ import annotations

import json

from . import examples
from .options import add_json


def register(sub) -> None:
    p = sub.add_parser("compare", help="runs side by side: data, backbone, strategy, metrics, time, size",
                       description="Print a table of the runs; with --out, also write it as a self-contained "
                                   "HTML page.",
                       **examples("tlearn compare runs/a runs/b                      # table on stdout",
                                  "tlearn compare runs/a runs/b --out compare.html   # and an HTML page"))
    p.add_argument("runs", nargs="+", help="run directories")
    p.add_argument("--out", default=None, metavar="FILE",
                   help="also write the table as an HTML page to FILE (e.g. compare.html); none by default")
    add_json(p, "print the rows as JSON instead of a table")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..report.compare import compare_runs, format_table, write_compare_html

    rows = compare_runs(args.runs)
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print(format_table(rows))
    if args.out:
        page = write_compare_html(rows, args.out)
        if not args.json:
            print(f"\nwritten to {page}")
    return 0
