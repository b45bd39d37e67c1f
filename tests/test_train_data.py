"""Decoded-image cache, augmentation presets, class balance and DDP sharding of the epoch order."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from tlearn.data.augment import PRESETS, eval_view, mix_batch, train_transform
from tlearn.data.decoded_cache import as_chw_tensor, decode_images, square_size
from tlearn.data.images import load_rgb
from tlearn.data.layout import Sample
from tlearn.data.transforms import DataConfig, eval_transform
from tlearn.train import inverse_frequency_weights
from tlearn.train.data import epoch_order


def test_cached_eval_view_equals_the_eval_transform_on_the_file(hymenoptera, tmp_path):
    files = sorted((hymenoptera / "val" / "bees").glob("*.jpg"))[:3]
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    samples = [Sample(files[0], 1), Sample(bad, 0), Sample(files[1], 1), Sample(files[2], 1)]
    cfg = DataConfig(input_size=64, mean=(0.5,) * 3, std=(0.5,) * 3)
    decoded = decode_images(samples, cfg, tmp_path / "cache")
    assert isinstance(decoded.images, np.memmap) and decoded.images.shape == (3, 72, 72, 3) == (3, square_size(cfg), square_size(cfg), 3)
    assert decoded.rows == [0, 2, 3] and not decoded.from_cache
    assert len(decoded.skipped) == 1 and decoded.skipped[0].path == str(bad) and "corrupt" in decoded.skipped[0].reason
    view = eval_view(cfg)
    for k, row in enumerate(decoded.rows):
        expected = eval_transform(cfg)(load_rgb(samples[row].path, draft_size=cfg.resize_size))
        assert torch.equal(view(as_chw_tensor(decoded.images[k])), expected)
    again = decode_images(samples, cfg, tmp_path / "cache")
    assert again.from_cache and again.rows == decoded.rows and len(again.skipped) == 1
    other_size = decode_images(samples, cfg.with_size(32), tmp_path / "cache")
    assert not other_size.from_cache and other_size.images.shape[1] == 36


@pytest.mark.parametrize("preset", PRESETS)
def test_presets_give_normalised_crops_of_the_input_size(preset):
    cfg = DataConfig(input_size=48)
    square = torch.randint(0, 256, (3, cfg.resize_size, cfg.resize_size), dtype=torch.uint8)
    out = train_transform(cfg, preset)(square)
    assert out.shape == (3, 48, 48) and out.dtype == torch.float32
    if preset == "none":
        assert torch.equal(out, eval_view(cfg)(square))
    if preset == "flip":  # the eval view or its mirror, nothing else
        view = eval_view(cfg)(square)
        assert torch.equal(out, view) or torch.equal(out, view.flip(-1))


def test_flip_preset_mirrors_about_half_the_time():
    cfg = DataConfig(input_size=16, crop_pct=1.0)
    square = torch.zeros((3, 16, 16), dtype=torch.uint8)
    square[:, :, 8:] = 255
    torch.manual_seed(0)
    mirrored = sum(bool(train_transform(cfg, "flip")(square)[:, :, 0].mean() > 0) for _ in range(200))
    assert 60 < mirrored < 140


def test_crop_preset_never_mirrors_and_the_cli_offers_every_preset():
    from tlearn.cli import build_parser

    for preset in PRESETS:
        assert build_parser("fit").parse_args(["fit", "d", "--out", "o", "--augment", preset]).augment == preset
    cfg = DataConfig(input_size=32, crop_pct=1.0)
    # left half dark, right half bright: a flip would put the bright half on the left
    square = torch.zeros((3, 32, 32), dtype=torch.uint8)
    square[:, :, 16:] = 255
    torch.manual_seed(0)
    for _ in range(50):
        out = train_transform(cfg, "crop")(square)
        assert out[:, :, :4].mean() < out[:, :, -4:].mean()


def test_fine_tuning_crops_at_the_train_size_and_predicts_at_the_input_size():
    cfg = DataConfig(input_size=56, train_size=48)
    square = torch.randint(0, 256, (3, cfg.resize_size, cfg.resize_size), dtype=torch.uint8)
    assert train_transform(cfg, "light")(square).shape == (3, 48, 48)
    assert train_transform(cfg, "none")(square).shape == eval_view(cfg)(square).shape == (3, 56, 56)
    assert DataConfig.from_dict(cfg.to_dict()) == cfg
    assert DataConfig.from_dict({**cfg.to_dict(), "train_size": None}).training_size == 56  # trained at input_size
    assert cfg.with_size(32).training_size == 32  # a size the user chose is used for both


def test_mixup_cutmix_targets_are_distributions_matching_lambda():
    g = torch.Generator().manual_seed(0)
    images, labels = torch.randn(8, 3, 16, 16), torch.arange(8) % 4
    for _ in range(6):
        mixed, targets, (perm, lam) = mix_batch(images, labels, 4, g)
        assert mixed.shape == images.shape and torch.allclose(targets.sum(1), torch.ones(8))
        assert torch.allclose(targets[torch.arange(8), labels], torch.full((8,), lam)
                              + (1 - lam) * (labels[perm] == labels).float())


def test_class_weights_and_balanced_sampler_even_out_a_skewed_set():
    labels = np.array([0] * 900 + [1] * 100)
    w = inverse_frequency_weights(labels.tolist(), 3)
    assert w.tolist() == pytest.approx([1000 / (2 * 900), 1000 / (2 * 100), 0.0])
    plain = epoch_order(labels, epoch=1, seed=0, balanced=False)
    assert sorted(plain) == list(range(1000))
    drawn = labels[epoch_order(labels, epoch=1, seed=0, balanced=True)]
    assert 0.45 < drawn.mean() < 0.55
    assert epoch_order(labels, 2, 0, True) != epoch_order(labels, 1, 0, True)
    assert epoch_order(labels, 2, 0, True) == epoch_order(labels, 2, 0, True)


def test_ddp_ranks_share_out_one_epoch_order():
    labels = np.arange(11) % 2
    full = epoch_order(labels, 3, 0, False)
    shards = [epoch_order(labels, 3, 0, False, rank=r, world=2) for r in range(2)]
    assert len(shards[0]) == len(shards[1]) == 6
    assert set(shards[0]) | set(shards[1]) == set(full)
    assert [x for pair in zip(*shards) for x in pair][:11] == full
