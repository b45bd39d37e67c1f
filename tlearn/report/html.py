"""Jinja2 rendering of report pages (autoescaped: class names and paths come from the user's files)."""
from __future__ import annotations

import math

import numpy as np
from jinja2 import Environment, StrictUndefined, select_autoescape

from .templates import TEMPLATES


def fmt(value, digits: int = 3) -> str:
    """A number with fixed decimals, '–' for missing or NaN; integers with thousands separators."""
    if value is None or (isinstance(value, (float, np.floating)) and math.isnan(value)):
        return "–"
    if isinstance(value, (bool, np.bool_)):
        return str(value)
    if isinstance(value, (int, np.integer)):
        return f"{value:,}"
    if isinstance(value, (float, np.floating)):
        return f"{value:.{digits}f}"
    return str(value)


def pct(value, digits: int = 0) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{100 * value:.{digits}f}"


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
