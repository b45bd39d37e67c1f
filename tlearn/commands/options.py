"""Command-line arguments generated from a config dataclass's fields (help, choices, flags in their metadata),
the help formatter every command uses (defaults shown), and deprecated spellings of renamed options."""
from __future__ import annotations

import argparse
import sys
from dataclasses import MISSING, fields

from ..config import flags_of

_TYPES = {"int": int, "float": float, "str": str, "bool": bool}
_warned: set[str] = set()


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the description's and examples' line breaks and shows each option's default: `(default: X)`."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if ("%(default)" in text or "(default" in text or any(default is x for x in (None, False, True))
                or default == argparse.SUPPRESS or not action.option_strings or action.nargs == 0):
            return text
        shown = ",".join(str(x) for x in default) if isinstance(default, (list, tuple)) else default
        return f"{text.strip()} (default: {str(shown).replace('%', '%%')})".lstrip()


def warn_deprecated(old: str, new: str) -> None:
    """Say once per process on stderr that `old` is an older spelling of `new`."""
    if old in _warned:
        return
    _warned.add(old)
    print(f"tlearn: warning: {old} is deprecated and will be removed; use {new}", file=sys.stderr)


class _Deprecated(argparse.Action):
    """An older spelling of an option: warns once, then stores what the new spelling would."""

    def __init__(self, option_strings, dest, canonical: str = "", value=None, **kwargs):
        self.canonical, self.value = canonical, value
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        warn_deprecated(option_string, self.canonical)
        setattr(namespace, self.dest, self.value if self.nargs == 0 else values)


def add_deprecated(parser, old: str | tuple[str, ...], canonical: str, dest: str, *, value=None, **kwargs) -> None:
    """Accept `old` (hidden from --help) as `canonical`: with value= it is a flag that stores value, otherwise it
    takes an argument like the canonical option (pass type=, choices=, nargs= as for add_argument)."""
    names = (old,) if isinstance(old, str) else tuple(old)
    if value is not None:
        kwargs["nargs"] = 0
    parser.add_argument(*names, action=_Deprecated, canonical=canonical, value=value, dest=dest,
                        default=argparse.SUPPRESS, help=argparse.SUPPRESS, **kwargs)


def add_json(parser, help: str = "print the result as JSON instead of a short summary") -> None:
    """--json, the same flag on every command that prints a result."""
    parser.add_argument("--json", action="store_true", help=help)


def _kind(annotation) -> type:
    name = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", str(annotation))
    return _TYPES.get(name.replace(" | None", "").strip(), str)


def add_config_arguments(parser: argparse.ArgumentParser, config_class, exclude: tuple[str, ...] = ()) -> None:
    """One argument per field of config_class: positionals by name, the rest `--name-with-dashes` (or their
    flags), each older spelling in `deprecated` accepted with a warning."""
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
        kind = meta.get("parse") or _kind(f.type)
        default = (f.default if f.default is not MISSING else f.default_factory()
                   if f.default_factory is not MISSING else None)
        kwargs: dict = {"help": meta.get("help") or ("(default: %(default)s)" if default is not None else None),
                        "dest": f.name}
        flags = flags_of(f)
        value_kwargs: dict = {"type": kind}
        if meta.get("choices") is not None:
            value_kwargs["choices"] = list(meta["choices"])
        if meta.get("metavar"):
            value_kwargs["metavar"] = meta["metavar"]
        if meta.get("flag_value") is not None:  # a single-choice option, given as a flag
            kwargs.update(action="store_const", const=meta["flag_value"], default=default)
        elif kind is bool:
            kwargs["action"] = (argparse.BooleanOptionalAction if default is None
                                else "store_false" if default else "store_true")
            if default is None:
                kwargs["default"] = None
        else:
            kwargs.update(value_kwargs, default=default)
        if f.default is MISSING and f.default_factory is MISSING:
            kwargs["required"] = True
        target.add_argument(*flags, **kwargs)
        for old in meta.get("deprecated") or ():
            if kind is bool and meta.get("flag_value") is None:
                add_deprecated(target, old, flags[0], f.name, value=not default if default is not None else True)
            else:  # takes a value, as the old spelling did (of a flag_value option: the single choice)
                add_deprecated(target, old, flags[0], f.name, **value_kwargs)


def config_from_args(config_class, args: argparse.Namespace, **overrides):
    """config_class built from the parsed arguments that are its fields."""
    known = {f.name for f in fields(config_class)}
    return config_class(**{k: v for k, v in vars(args).items() if k in known}, **overrides)
