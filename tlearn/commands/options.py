"""Command-line arguments generated from a config dataclass's fields (help, choices, flags in their metadata)."""
from __future__ import annotations

import argparse
from dataclasses import MISSING, fields

_TYPES = {"int": int, "float": float, "str": str, "bool": bool}


def _kind(annotation) -> type:
    name = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", str(annotation))
    return _TYPES[name.replace(" | None", "").strip()]


def add_config_arguments(parser: argparse.ArgumentParser, config_class, exclude: tuple[str, ...] = ()) -> None:
    """One argument per field of config_class: `data` positional, the rest `--name-with-dashes`."""
    groups: dict[str, argparse._ArgumentGroup] = {}
    for f in fields(config_class):
        meta = f.metadata
        if f.name in exclude or not meta.get("cli", True):
            continue
        target = parser
        if meta.get("group"):
            target = groups.get(meta["group"]) or groups.setdefault(meta["group"],
                                                                    parser.add_argument_group(meta["group"]))
        if meta.get("positional"):
            target.add_argument(f.name, help=meta.get("help"))
            continue
        kind = _kind(f.type)
        default = None if f.default is MISSING else f.default
        kwargs: dict = {"help": meta.get("help"), "dest": f.name}
        flags = list(meta.get("flags") or [f"--{f.name.replace('_', '-')}"])
        if kind is bool:
            kwargs["action"] = (argparse.BooleanOptionalAction if default is None
                                else "store_false" if default else "store_true")
            if default is None:
                kwargs["default"] = None
        else:
            kwargs.update(type=kind, default=default)
            if meta.get("choices") is not None:
                kwargs["choices"] = list(meta["choices"])
            if meta.get("metavar"):
                kwargs["metavar"] = meta["metavar"]
        if f.default is MISSING:
            kwargs["required"] = True
        target.add_argument(*flags, **kwargs)


def config_from_args(config_class, args: argparse.Namespace, **overrides):
    """config_class built from the parsed arguments that are its fields."""
    known = {f.name for f in fields(config_class)}
    return config_class(**{k: v for k, v in vars(args).items() if k in known}, **overrides)
