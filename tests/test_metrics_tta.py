"""Test-time augmentation: the views are what they claim, and averaging is over those views."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from tlearn.backbones.model import TransferModel
from tlearn.data.layout import Sample
from tlearn.data.transforms import DataConfig, eval_transform
from tlearn.errors import TlearnError
from tlearn.evaluate.predict import predict_samples
from tlearn.evaluate.tta import TTA_POLICIES, predict_samples_tta, tta_transform

CFG = DataConfig(input_size=32, crop_pct=1.0)  # 32 px images pass through resize and crop unchanged


def _image(seed: int = 0, size: int = 32) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8))


def _model() -> TransferModel:
    torch.manual_seed(0)
    backbone = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 5, padding=2),
                             nn.AdaptiveAvgPool2d(2), nn.Flatten())  # 2x2 pooling keeps left/right apart
    return TransferModel(backbone, 32, 3, "test-net").eval()


def test_flip_views_are_the_eval_crop_and_its_mirror():
    img = _image(size=48)
    cfg = DataConfig(input_size=32)
    views = tta_transform(cfg, "flip")(img)
    assert views.shape == (2, 3, 32, 32)
    torch.testing.assert_close(views[0], eval_transform(cfg)(img))
    torch.testing.assert_close(views[1], views[0].flip(-1))


def test_crops_gives_ten_views_including_the_centre_crop():
    img = _image(size=64)
    cfg = DataConfig(input_size=32)
    views = tta_transform(cfg, "crops")(img)
    assert views.shape == (TTA_POLICIES["crops"], 3, 32, 32)
    centre = eval_transform(cfg)(img)
    assert any(torch.allclose(v, centre) for v in views)


def test_unknown_policy_is_a_clear_error():
    with pytest.raises(TlearnError, match="flip"):
        tta_transform(CFG, "rotate")


def test_flip_tta_averages_the_image_and_its_mirror(tmp_path):
    img = _image(1)
    img.save(tmp_path / "a.png")
    img.transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(tmp_path / "a_mirror.png")
    (tmp_path / "broken.png").write_bytes(b"not an image")
    model = _model()
    samples = [Sample(tmp_path / "a.png", 0), Sample(tmp_path / "broken.png", 1)]
    tta, fs = predict_samples_tta(model, samples, CFG, "flip", precision="fp32", device="cpu", num_workers=0)
    plain, _ = predict_samples(model, [Sample(tmp_path / "a.png", 0), Sample(tmp_path / "a_mirror.png", 0)], CFG,
                               precision="fp32", device="cpu", use_cache=False, progress=False)
    assert not np.allclose(plain[0], plain[1], atol=1e-4)  # the model is not mirror-invariant, so TTA matters
    np.testing.assert_allclose(tta[0], plain.mean(0), atol=1e-5)
    assert [s.path.name for s in fs.samples] == ["a.png"]
    assert [s.path for s in fs.skipped] == [str(tmp_path / "broken.png")]
    np.testing.assert_allclose(tta.sum(1), 1.0)
