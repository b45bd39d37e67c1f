"""--strategy auto: a small portfolio of fit recipes, ordered by rules on cheap data facts, searched on val by
successive halving within a time budget; the winner becomes the run (see search.py)."""
from .budget import DEFAULT_BUDGET_MINUTES
from .search import AutoSearch

__all__ = ["AutoSearch", "DEFAULT_BUDGET_MINUTES"]
