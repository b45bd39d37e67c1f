"""Distillation parts: the compact student backbone, teacher output caching, the teacher's view, latency."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from tlearn.backbones import build_transfer_model, count_parameters, get_spec, load_backbone
from tlearn.backbones.model import TransferModel
from tlearn.data.layout import Sample, load_splits
from tlearn.data.transforms import DataConfig
from tlearn.distill.measure import compare_costs, torch_threads
from tlearn.distill.teacher import Teacher
from tlearn.distill.views import convert_view, paired_view, teacher_view
from tlearn.errors import TlearnError


def test_compact_cnn_is_a_registered_few_hundred_thousand_parameter_backbone():
    spec = get_spec("compact_cnn")
    backbone, info = load_backbone("compact_cnn", "none")
    assert 200_000 < count_parameters(backbone) < 1_000_000
    assert info.weights == "none" and spec.data_config.input_size == 32
    for size in (32, 64):  # any input size: the features are globally pooled
        assert backbone.eval()(torch.zeros(2, 3, size, size)).shape == (2, spec.feature_dim)
    model = build_transfer_model(info, 5)
    assert [g for g, _ in model.layer_groups()] == ["stem", "stage1", "stage2", "stage3", "top", "head"]


def test_compact_cnn_without_weights_says_how_to_get_a_random_init():
    with pytest.raises(TlearnError, match="none"):
        load_backbone("compact_cnn")


def _teacher(seed: int) -> Teacher:
    torch.manual_seed(seed)
    backbone, info = load_backbone("compact_cnn", "none")
    model = TransferModel(backbone, info.feature_dim, 3, info.architecture).eval()
    return Teacher(model, DataConfig(input_size=24, crop_pct=1.0), ["blue", "green", "red"])


def test_teacher_outputs_are_computed_once_and_cached_by_weights_and_content(tiny_tree, tmp_path):
    samples = load_splits(tiny_tree).train[:10]
    teacher = _teacher(0)
    opts = dict(precision="fp32", device="cpu", cache_dir=tmp_path, num_workers=0, progress=False)
    first = teacher.logits(samples, **opts)
    assert first.from_cache == 0 and first.features.shape == (10, 3)
    second = teacher.logits(samples, **opts)
    assert second.from_cache == 10
    np.testing.assert_allclose(second.features, first.features, rtol=1e-6)
    # The cached rows are the teacher's outputs on the un-augmented images.
    direct = teacher.model(torch.stack([_eval_tensor(s, teacher.data_config) for s in samples])).detach().numpy()
    np.testing.assert_allclose(first.features, direct, rtol=1e-4, atol=1e-4)
    # Other teacher weights: nothing is reused.
    assert _teacher(1).logits(samples, **opts).from_cache == 0
    # A renamed copy of an image hits the cache (keyed by content, not path).
    copy = tmp_path / "renamed.png"
    copy.write_bytes(samples[0].path.read_bytes())
    assert teacher.logits([Sample(copy, -1)], **opts).from_cache == 1


def _eval_tensor(sample, cfg):
    from tlearn.data.images import load_rgb
    from tlearn.data.transforms import eval_transform

    return eval_transform(cfg)(load_rgb(sample.path))


def test_teacher_refuses_data_with_other_classes():
    with pytest.raises(TlearnError, match="same class folders"):
        _teacher(0).check_classes(["cat", "dog", "red"], "DATA")


def test_teacher_view_keeps_the_pixels_and_changes_size_and_normalisation():
    student = DataConfig(input_size=16, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    teacher = DataConfig(input_size=48)
    pixels = torch.rand(2, 3, 16, 16)
    batch = (pixels - 0.5) / 0.25
    same = teacher_view(batch, student, student)
    torch.testing.assert_close(same, batch, rtol=1e-5, atol=1e-5)
    big = teacher_view(batch, student, teacher)
    assert big.shape == (2, 3, 48, 48)
    mean, std = torch.tensor(teacher.mean).view(1, 3, 1, 1), torch.tensor(teacher.std).view(1, 3, 1, 1)
    # A constant image stays that constant, whatever the resize.
    flat = torch.full((1, 3, 16, 16), 0.3)
    out = teacher_view((flat - 0.5) / 0.25, student, teacher) * std + mean
    torch.testing.assert_close(out, torch.full_like(out, 0.3), rtol=1e-4, atol=1e-4)


def test_compare_costs_reports_params_size_and_latency_and_restores_threads():
    small = build_transfer_model(load_backbone("compact_cnn", "none")[1], 4)
    threads = torch.get_num_threads()
    costs = compare_costs({"a": (small, 16), "b": (small, 32)}, repeats=2, batch32_repeats=1, threads=1)
    assert torch.get_num_threads() == threads
    assert costs["a"]["params"] == count_parameters(small)
    assert costs["a"]["mb"] == pytest.approx(sum(t.numel() * t.element_size()
                                                 for t in small.state_dict().values()) / 1e6, rel=1e-3)
    assert all(costs[k][m] > 0 for k in costs for m in ("ms_batch1", "ms_batch32"))
    with torch_threads(None):
        assert torch.get_num_threads() == threads


def test_loss_hook_uses_cached_rows_or_the_live_teacher_on_the_same_batch():
    from tlearn.distill.loss import DistillationLoss, distillation_loss
    from tlearn.train import Batch

    torch.manual_seed(0)
    teacher = _teacher(0)
    student_cfg = DataConfig(input_size=16, crop_pct=1.0)
    student = build_transfer_model(load_backbone("compact_cnn", "none")[1], 3).eval()
    images, labels = torch.randn(4, 3, 16, 16), torch.tensor([0, 1, -1, 2])
    batch = Batch(images, labels, torch.tensor([3, 0, 2, 1]), labels)
    cached = torch.randn(5, 3)
    hook = DistillationLoss(teacher.model, student_cfg, teacher.data_config, 4.0, 0.5, cached=cached)
    with torch.no_grad():
        logits = student(images)
        expected = distillation_loss(logits, cached[[3, 0, 2, 1]], labels, 4.0, 0.5)
        assert hook(student, batch).item() == pytest.approx(expected.item(), rel=1e-5)
        live = DistillationLoss(teacher.model, student_cfg, teacher.data_config, 4.0, 0.5, live=True)
        seen = teacher.model(teacher_view(images, student_cfg, teacher.data_config))
        expected = distillation_loss(logits, seen, labels, 4.0, 0.5)
        assert live(student, batch).item() == pytest.approx(expected.item(), rel=1e-4)


def test_paired_view_cuts_crops_at_the_larger_training_size():
    student = DataConfig(input_size=64, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    teacher = DataConfig(input_size=256, train_size=224)
    view = paired_view(student, teacher)
    assert (view.input_size, view.train_size, view.mean) == (224, None, teacher.mean)
    assert paired_view(DataConfig(input_size=320), teacher).input_size == 320  # a student bigger than its teacher
    crop = torch.rand(2, 3, 224, 224)
    batch = (crop - torch.tensor(teacher.mean).view(1, 3, 1, 1)) / torch.tensor(teacher.std).view(1, 3, 1, 1)
    assert convert_view(batch, view, teacher) is batch  # the teacher takes the crop as cut
    small = convert_view(batch, view, student)
    assert small.shape == (2, 3, 64, 64)
    # The student's view is the same crop, downsampled (antialiased) and normalised its own way.
    expected = torch.nn.functional.interpolate(crop, size=(64, 64), mode="bilinear", antialias=True)
    torch.testing.assert_close(small * 0.25 + 0.5, expected, rtol=1e-4, atol=1e-4)


def test_paired_loss_gives_the_teacher_the_full_resolution_crop_and_the_student_its_own_size():
    from tlearn.distill.loss import DistillationLoss, LabelsOnlyLoss, distillation_loss
    from tlearn.train import Batch

    torch.manual_seed(0)
    teacher = _teacher(0)  # 24 px
    student_cfg = DataConfig(input_size=12, crop_pct=1.0)
    view = paired_view(student_cfg, teacher.data_config)
    student = build_transfer_model(load_backbone("compact_cnn", "none")[1], 3).eval()
    images, labels = torch.randn(4, 3, 24, 24), torch.tensor([0, 1, 2, 2])
    batch = Batch(images, labels, torch.arange(4), labels)
    hook = DistillationLoss(teacher.model, student_cfg, teacher.data_config, 2.0, 0.7, live=True, view=view)
    seen_by_student = []
    with torch.no_grad():
        logits = student(convert_view(images, view, student_cfg))
        expected = distillation_loss(logits, teacher.model(images), labels, 2.0, 0.7)
        assert hook(student, batch).item() == pytest.approx(expected.item(), rel=1e-4)
        handle = student.register_forward_pre_hook(lambda m, args: seen_by_student.append(args[0].shape))
        alone = LabelsOnlyLoss(student_cfg, view)(student, batch)
        handle.remove()
    assert seen_by_student == [(4, 3, 12, 12)]
    assert alone.item() == pytest.approx(torch.nn.functional.cross_entropy(logits, labels).item(), rel=1e-5)
