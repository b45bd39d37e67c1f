"""Which images to label next: `tlearn select` (cold start by typicality or coverage of the feature space; with
labels, the probe's uncertainty with diversity) and the simulation `tlearn study --selection` runs.

    from tlearn.select import SelectConfig, select_images
    result = select_images(SelectConfig("pool/", budget=50, out="to_label/"))
"""
from .config import METHODS, SelectConfig

__all__ = ["SelectConfig", "METHODS", "select_images", "SelectResult", "simulate_selection"]

_LAZY = {"select_images": ".selection", "SelectResult": ".selection", "simulate_selection": ".simulate"}


def __getattr__(name: str):
    """The machinery, imported on first use: the config stays torch-free for `tlearn select --help`."""
    if name not in _LAZY:
        raise AttributeError(f"module 'tlearn.select' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(_LAZY[name], __name__), name)
    globals()[name] = value
    return value
