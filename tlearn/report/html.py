"""Jinja2 rendering of report pages (autoescaped: class names and paths come from the user's files)."""
from __future__ import annotations

from jinja2 import Environment, StrictUndefined, select_autoescape

from ..pages import fmt, pct
from .templates import TEMPLATES

__all__ = ["fmt", "pct", "render", "render_text"]


def _environment() -> Environment:
    from jinja2 import DictLoader

    env = Environment(loader=DictLoader(TEMPLATES), autoescape=select_autoescape(default=True,
                      default_for_string=True), undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["fmt"] = fmt
    env.filters["pct"] = pct
    return env


_ENV = _environment()


def render(template: str, view: dict) -> str:
    return _ENV.get_template(template).render(**view)


def render_text(source: str, view: dict) -> str:
    """A template given as text (a page kept beside the module that builds it), same filters and escaping."""
    return _ENV.from_string(source).render(**view)
