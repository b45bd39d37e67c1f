"""tlearn report RUN [--out FILE] [--positive CLASS]"""
from __future__ import annotations

from ..constants import REPORT_HEATMAPS
from . import examples


def register(sub) -> None:
    p = sub.add_parser("report", help="(re)write RUN/report.html from the run directory",
                       description="Rewrite RUN/report.html from config.yaml, metrics.json, history.csv and every "
                                   "RUN/predictions/*.csv (e.g. after `tlearn evaluate RUN DIR --save-as NAME`).",
                       **examples("tlearn report runs/flowers        # rewrites runs/flowers/report.html",
                                  "tlearn report runs/xray --positive PNEUMONIA",
                                  "tlearn report runs/flowers --heatmaps 0   # no heatmap gallery: no model loaded"))
    p.add_argument("run", help="run directory")
    p.add_argument("--out", default=None, help="write the page here instead of RUN/report.html")
    p.add_argument("--positive", default=None,
                   help="two-class runs: the class called positive for ROC, sensitivity and specificity "
                        "(default: the second class in classes.json)")
    p.add_argument("--heatmaps", type=int, default=REPORT_HEATMAPS, metavar="N",
                   help=f"'Where the model looks': heatmaps for up to N confidently wrong and correct images "
                        f"(default {REPORT_HEATMAPS}; 0 leaves the section out)")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..report import write_report

    print(write_report(args.run, args.out, positive_class=args.positive, heatmaps=args.heatmaps))
    return 0
