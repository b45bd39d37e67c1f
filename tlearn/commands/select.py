"""tlearn select POOL --budget N --out DIR [--labeled DATA] [--method M] [--json]"""
from __future__ import annotations

from ..select.config import SelectConfig
from . import examples
from .options import add_config_arguments, add_json, config_from_args
from .output import emit, one_line


def register(sub) -> None:
    p = sub.add_parser(
        "select", help="which unlabeled images to label next",
        description="Pick the N images of POOL (a folder of unlabeled images, or a CSV with a path column) that "
                    "are worth labelling first, from the backbone's cached features: with nothing labelled yet, "
                    "typical images spread over the feature space (typiclust, probcover); with --labeled DATA, more of "
                    "those while labels are few (under 20 per class), then the images the probe fitted on DATA is "
                    "least sure of, spread apart (margin, badge). Near copies are "
                    "never picked twice, unreadable files are listed. Writes DIR/to_label.csv (path, rank, method, "
                    "why, and an empty label column: filled in, it is a manifest `tlearn fit` reads), "
                    "DIR/to_label.html (contact sheet) and DIR/selection.json.",
        **examples("tlearn select photos/ --budget 50 --out round1     # cold start: typiclust",
                   "tlearn fit round1/to_label.csv --out runs/r1 --val-fraction 0   # after filling in labels",
                   "tlearn select photos/ --budget 50 --labeled round1/to_label.csv --out round2"))
    add_config_arguments(p, SelectConfig)
    add_json(p, "print the picks and selection.json's figures as JSON instead of a short summary")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..select import select_images

    result = select_images(config_from_args(SelectConfig, args))
    s = result.summary
    lines = [f"{s['picked']} image(s) to label, picked by {s['method']} from {s['pool_images']} "
             f"({s['copies_left_out']} near copies left out, {len(s['skipped'])} unreadable) in "
             f"{s['seconds']['total']:.1f} s"]
    lines += [f"{r['rank']:>4}  {one_line(r['path'])}  ({one_line(r['why'])})" for r in result.picks[:10]]
    if len(result.picks) > 10:
        lines.append(f"      ... {len(result.picks) - 10} more")
    lines.append(f"list: {result.csv}  contact sheet: {result.page}")
    emit(args.json, {**s, "picks": result.picks, "csv": str(result.csv), "page": str(result.page)}, lines)
    return 0
