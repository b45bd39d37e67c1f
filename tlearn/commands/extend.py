"""tlearn extend RUN NEWDATA --out RUN2 [--method analytic|lwf|naive] [--replay K]"""
from __future__ import annotations

from ..incremental.config import ExtendConfig
from . import examples
from .options import add_config_arguments, add_json, config_from_args
from .output import emit, split_lines


def register(sub) -> None:
    p = sub.add_parser(
        "extend", help="teach a trained run new classes (or more images of its classes)",
        description="Extend RUN with NEWDATA (any fit layout: new class folders and/or more images of RUN's "
                    "classes) into RUN2, whose classes are RUN's followed by the new ones. A linear-probe run is "
                    "extended exactly from its kept feature statistics (no old images needed); a fine-tuned run "
                    "by Learning without Forgetting.",
        **examples("tlearn extend runs/flowers new-flowers --out runs/flowers+2     # analytic head, exact",
                   "tlearn extend runs/flowers-ft new-flowers --out runs/ft+2 --method lwf --replay 20 --epochs 4"))
    add_config_arguments(p, ExtendConfig)
    add_json(p, "print the val/test figures and the run's path as JSON instead of a short summary")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..incremental.extension import extend_config
    from .fit import split_summary

    result = extend_config(config_from_args(ExtendConfig, args))
    m = result.metrics
    summary = split_summary(m)
    summary.update(classes=len(result.classes), added=result.config["lineage"][-1]["classes_added"],
                   method=result.config["strategy"]["name"], train_seconds=m["train_seconds"], run=str(result.path))
    lines = [f"{summary['method']}: {summary['classes']} classes ({summary['added']} added)", *split_lines(summary),
             f"trained in {m['train_seconds']:.1f} s", f"run: {result.path}"]
    emit(args.json, summary, lines)
    return 0
