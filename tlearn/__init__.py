"""tlearn: transfer learning for image recognition, from a folder of images and a pretrained network."""
__version__ = "0.1.0"

from .backbones import DEFAULT_BACKBONE, list_specs as list_backbones, load_backbone  # noqa: E402
from .config import FitConfig  # noqa: E402
from .errors import DataError, TlearnError, WeightsError  # noqa: E402
from .fit import fit, fit_config  # noqa: E402
from .run import Run, load_run  # noqa: E402

__all__ = [
    "__version__", "DEFAULT_BACKBONE", "list_backbones", "load_backbone", "FitConfig", "DataError",
    "TlearnError", "WeightsError", "fit", "fit_config", "Run", "load_run",
]
