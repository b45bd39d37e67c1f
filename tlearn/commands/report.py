"""tlearn report RUN [--out FILE] [--positive CLASS]"""
from __future__ import annotations

import json

from ..constants import REPORT_HEATMAPS
from . import examples
from .options import add_json


def register(sub) -> None:
    p = sub.add_parser("report", help="(re)write RUN/report.html from the run directory",
                       description="Rewrite RUN/report.html from config.yaml, metrics.json, history.csv and every "
                                   "RUN/predictions/*.csv (e.g. after `tlearn evaluate RUN DIR --save-as NAME`).",
                       **examples("tlearn report runs/flowers        # rewrites runs/flowers/report.html",
                                  "tlearn report runs/xray --positive PNEUMONIA",
                                  "tlearn report runs/flowers --heatmaps 0   # no heatmap gallery: no model loaded"))
    p.add_argument("run", help="run directory")
    p.add_argument("--out", default=None, metavar="FILE", help="write the page here instead of RUN/report.html")
    p.add_argument("--positive", default=None,
                   help="two-class runs: the class called positive for ROC, sensitivity and specificity "
                        "(default: the second class in classes.json)", metavar="CLASS")
    p.add_argument("--heatmaps", type=int, default=REPORT_HEATMAPS, metavar="N",
                   help="'Where the model looks': heatmaps for up to N confidently wrong and correct images "
                        "(0 leaves the section out)")
    add_json(p, 'print {"report": PATH} instead of the path')
    p.set_defaults(func=run)


def run(args) -> int:
    from ..report import write_report

    page = write_report(args.run, args.out, positive_class=args.positive, heatmaps=args.heatmaps)
    print(json.dumps({"report": str(page)}) if args.json else page)
    return 0
