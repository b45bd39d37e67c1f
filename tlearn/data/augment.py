"""Training augmentation presets built from the backbone's DataConfig, applied to cached uint8 squares.

none    the eval view: centre crop of input_size (what evaluation sees)
flip    the eval view, mirrored at random: the mildest augmentation (small students that must fit every image)
crop    random resized crop (scale 0.35-1) and nothing else: no flip, for data where left/right matters
        (traffic signs, text, digits)
light   random resized crop (scale 0.25-1) + horizontal flip
medium  random resized crop (scale 0.08-1) + flip + TrivialAugmentWide
strong  medium's crop and flip + RandAugment(2, 9) + random erasing, and mixup/cutmix on each batch
flip, light, medium and strong flip horizontally: they assume mirror images keep their class (not so for turn-arrow
signs: use crop).
"""
from __future__ import annotations

import numpy as np
import torch
from torchvision.transforms import v2 as T

from ..constants import AUGMENT_PRESETS
from .transforms import DataConfig, normalize

PRESETS = AUGMENT_PRESETS
# the random resized crop of each preset that crops: (smallest, largest) share of the square's area
CROP_SCALES = {"crop": (0.35, 1.0), "light": (0.25, 1.0), "medium": (0.08, 1.0), "strong": (0.08, 1.0)}
CROP_RATIOS = (3.0 / 4.0, 4.0 / 3.0)  # torchvision's default aspect ratios for random resized crops
MIRRORING = ("flip", "light", "medium", "strong")  # the presets that mirror images at random


def train_transform(cfg: DataConfig, preset: str = "light") -> T.Compose:
    """uint8 (3, S, S) cached square -> normalised float (3, size, size): the eval view for none, else random
    crops at cfg.training_size."""
    if preset not in PRESETS:
        raise ValueError(f"augment must be one of {', '.join(PRESETS)}, not {preset!r}")
    size = cfg.training_size
    if preset == "none":
        ops = [T.CenterCrop(cfg.input_size)]
    elif preset == "flip":
        ops = [T.CenterCrop(cfg.input_size), T.RandomHorizontalFlip()]
    elif preset == "crop":
        ops = [T.RandomResizedCrop(size, scale=CROP_SCALES["crop"], ratio=CROP_RATIOS, antialias=True)]
    elif preset == "light":
        ops = [T.RandomResizedCrop(size, scale=CROP_SCALES["light"], ratio=CROP_RATIOS, antialias=True),
               T.RandomHorizontalFlip()]
    elif preset == "medium":
        ops = [T.RandomResizedCrop(size, scale=CROP_SCALES["medium"], ratio=CROP_RATIOS, antialias=True),
               T.RandomHorizontalFlip(), T.TrivialAugmentWide()]
    else:
        ops = [T.RandomResizedCrop(size, scale=CROP_SCALES["strong"], ratio=CROP_RATIOS, antialias=True),
               T.RandomHorizontalFlip(),
               T.RandAugment(num_ops=2, magnitude=9)]
    tail = [T.RandomErasing(p=0.25, value=0)] if preset == "strong" else []
    return T.Compose([*ops, *normalize(cfg), *tail])


def eval_view(cfg: DataConfig) -> T.Compose:
    """uint8 cached square -> the normalised eval input (identical to eval_transform on the file)."""
    return T.Compose([T.CenterCrop(cfg.input_size), *normalize(cfg)])


def mix_batch(images: torch.Tensor, labels: torch.Tensor, num_classes: int, generator: torch.Generator,
              mixup_alpha: float = 0.2, cutmix_alpha: float = 1.0
              ) -> tuple[torch.Tensor, torch.Tensor, tuple[torch.Tensor, float]]:
    """Mixup or cutmix (one of the two, equally likely) -> (images, soft targets, (perm, lam))."""
    perm = torch.randperm(len(images), generator=generator)
    use_cutmix = bool(torch.rand((), generator=generator) < 0.5)
    alpha = cutmix_alpha if use_cutmix else mixup_alpha
    beta_seed = int(torch.randint(2**31 - 1, (), generator=generator))
    lam = float(np.random.default_rng(beta_seed).beta(alpha, alpha)) if alpha > 0 else 1.0
    images = images.clone()
    if use_cutmix:
        h, w = images.shape[-2:]
        cut = (1 - lam) ** 0.5
        ch, cw = int(h * cut), int(w * cut)
        cy = int(torch.randint(h, (), generator=generator))
        cx = int(torch.randint(w, (), generator=generator))
        y0, y1 = max(cy - ch // 2, 0), min(cy + ch // 2, h)
        x0, x1 = max(cx - cw // 2, 0), min(cx + cw // 2, w)
        images[..., y0:y1, x0:x1] = images[perm][..., y0:y1, x0:x1]
        lam = 1 - (y1 - y0) * (x1 - x0) / (h * w)
    else:
        images = lam * images + (1 - lam) * images[perm]
    onehot = torch.nn.functional.one_hot(labels, num_classes).float()
    return images, lam * onehot + (1 - lam) * onehot[perm], (perm, lam)
