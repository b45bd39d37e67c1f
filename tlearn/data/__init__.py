"""Images on disk -> labelled samples, decoded RGB images and tensors."""
from .images import IMAGE_EXTENSIONS, UnreadableImage, load_rgb, to_rgb
from .layout import DataSplits, Sample, SkippedFile, list_images, load_splits, read_labelled_folder
from .transforms import DataConfig, eval_transform

__all__ = [
    "IMAGE_EXTENSIONS", "UnreadableImage", "load_rgb", "to_rgb", "DataSplits", "Sample", "SkippedFile",
    "list_images", "load_splits", "read_labelled_folder", "DataConfig", "eval_transform",
]
