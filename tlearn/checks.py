"""Checks of single settings, shared by the config objects and the training loop (torch-free).

Each returns the value or raises ValueError with a message that names the command-line option.
"""
from __future__ import annotations

import math
import re


def check_dicom_window(spec: str) -> str:
    """--dicom-window: auto, none or CENTER,WIDTH."""
    from .runtime_dicom import parse_window

    parse_window(spec)
    return spec


def check_decay(decay: float) -> float:
    """A usable weight-averaging decay (--ema)."""
    if not 0.0 < decay < 1.0:
        raise ValueError(f"--ema must be a decay between 0 and 1 (e.g. 0.99), not {decay!r}")
    return decay


def check_l2_sp(alpha: float) -> float:
    a = float(alpha)
    if not math.isfinite(a) or a < 0:
        raise ValueError(f"--l2-sp must be 0 (off) or a positive number (e.g. 0.1), not {alpha!r}.")
    return a


def check_memory_budget(gb: float) -> float:
    """--memory-budget: gigabytes, positive and finite."""
    g = float(gb)
    if not math.isfinite(g) or g <= 0:
        raise ValueError(f"--memory-budget must be a positive number of GB (e.g. 4), not {gb!r}.")
    return g


def check_temperature(temperature: float) -> float:
    t = float(temperature)
    if not math.isfinite(t) or t <= 0:
        raise ValueError(f"--temperature must be a positive number (typically 1-10), not {temperature!r}.")
    return t


def check_alpha(alpha: float) -> float:
    """Distillation's weight of the teacher's soft targets."""
    a = float(alpha)
    if not 0.0 <= a <= 1.0:
        raise ValueError(f"--alpha must be between 0 (labels only) and 1 (teacher only), not {alpha!r}.")
    return a


def check_val_fraction(fraction: float) -> float:
    """--val-fraction: 0 (no held-out val) up to, not including, 1."""
    f = float(fraction)
    if not 0.0 <= f < 1.0:
        raise ValueError(f"--val-fraction must be at least 0 (nothing held out) and below 1, not {fraction!r}.")
    return f


def check_feature_weight(weight: float) -> float:
    w = float(weight)
    if not math.isfinite(w) or w < 0:
        raise ValueError(f"--feature-weight must be 0 (off) or a positive number, not {weight!r}.")
    return w


def at_least(minimum: int | float, flag: str, unit: str = ""):
    """A check that a number is >= minimum."""
    def check(value):
        if value < minimum:
            raise ValueError(f"{flag} must be at least {minimum}{unit}, not {value}.")
        return value
    return check


def one_of(allowed: tuple, flag: str):
    def check(value):
        if value not in allowed:
            shown = ", ".join("none (unset)" if a is None else str(a) for a in allowed)
            raise ValueError(f"{flag} must be one of {shown}, not {value!r}.")
        return value
    return check


def check_regex(pattern: str) -> str:
    """A regular expression that compiles (--group-by)."""
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"--group-by {pattern!r} is not a valid regular expression ({exc}); e.g. "
                         "'^(person\\d+)' takes person1287 from person1287_virus_2210.jpeg.") from None
    return pattern


RESERVED_PREDICTIONS = ("train", "val", "test")  # RUN/predictions/<split>.csv written with the run


def check_save_as(name: str) -> str:
    """`evaluate --save-as NAME`: a plain file name for RUN/predictions/NAME.csv that replaces none of the run's
    own predictions and stays inside the run."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name) or ".." in name:
        raise ValueError(f"--save-as {name!r}: use a plain name (letters, digits, '.', '_', '-'), no folders.")
    if name in RESERVED_PREDICTIONS:
        raise ValueError(f"--save-as {name!r} would replace the run's own {name} predictions; choose another name.")
    return name
