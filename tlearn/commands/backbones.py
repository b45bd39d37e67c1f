"""tlearn backbones: the registry, with whether weights are available offline."""
from __future__ import annotations

import json

from . import examples
from .options import add_json


def register(sub) -> None:
    p = sub.add_parser("backbones", help="list backbones and whether their weights are available offline",
                       **examples("tlearn backbones          # names, input size, feature size, weights offline?",
                                  "tlearn backbones --json"))
    add_json(p, "print the rows as JSON instead of a table")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..backbones import list_specs, weights_available

    rows = [
        {"name": s.name, "family": s.family, "input_size": s.data_config.input_size, "feature_dim": s.feature_dim,
         "weights_offline": weights_available(s), "notes": s.notes}
        for s in list_specs()
    ]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'name':<20} {'family':<13} {'input':>5} {'features':>8}  offline weights")
    for r in rows:
        print(f"{r['name']:<20} {r['family']:<13} {r['input_size']:>5} {r['feature_dim']:>8}  "
              f"{'yes' if r['weights_offline'] else 'no'}{'  (' + r['notes'] + ')' if r['notes'] else ''}")
    print("\nalso: timm:<model name> (any timm model), or a tlearn run directory as --backbone")
    return 0
