"""Unknown option names refused with the closest valid one, for every API that takes options by keyword."""
from __future__ import annotations

import difflib
from collections.abc import Iterable

from .errors import TlearnError


def unknown_option_message(name: str, valid: Iterable[str], where: str) -> str:
    """"unknown option 'epoch' for tlearn.fit; did you mean 'epochs'?" (or the valid names when none is close)."""
    valid = sorted(valid)
    close = difflib.get_close_matches(name, valid, n=1, cutoff=0.6)
    hint = f"did you mean {close[0]!r}?" if close else f"the options are: {', '.join(valid)}"
    return f"unknown option {name!r} for {where}; {hint}"


def refuse_unknown(given: Iterable[str], valid: Iterable[str], where: str) -> None:
    """TlearnError naming each name in `given` that is not in `valid`, with the closest valid name."""
    valid = set(valid)
    unknown = [name for name in given if name not in valid]
    if unknown:
        raise TlearnError("\n".join(unknown_option_message(name, valid, where) for name in unknown))
