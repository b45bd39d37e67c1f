"""Feature hints: the student's projected features learn the teacher's; the projection is never deployed."""
from __future__ import annotations

import pytest
import torch

from tlearn.backbones import load_backbone
from tlearn.backbones.model import TransferModel
from tlearn.data.transforms import DataConfig
from tlearn.distill.hint import HintedStudent, hint_loss
from tlearn.distill.loss import DistillationLoss, check_feature_weight, distillation_loss
from tlearn.train.losses import Batch


def _model(classes: int = 3, seed: int = 0) -> TransferModel:
    torch.manual_seed(seed)
    backbone, info = load_backbone("compact_cnn", "none")
    return TransferModel(backbone, info.feature_dim, classes, info.architecture).eval()


def test_hint_loss_known_value_against_batch_centred_teacher_features():
    teacher = torch.tensor([[0.0, 10.0], [2.0, 10.0]])  # centred: (-1, 0), (1, 0); mean square 0.5 -> x sqrt2
    assert float(hint_loss(torch.zeros(2, 2), teacher)) == pytest.approx(1.0)
    target = torch.tensor([[-1.0, 0.0], [1.0, 0.0]]) * 2 ** 0.5
    assert float(hint_loss(target, teacher)) == pytest.approx(0.0, abs=1e-6)
    # an offset and an overall scale of the teacher's features do not matter, only how images differ
    assert float(hint_loss(target, teacher * 7 + 3)) == pytest.approx(0.0, abs=1e-6)
    # a constant feature stays 0 (no rounding noise blown up); the informative one keeps its weight
    assert float(hint_loss(torch.tensor([[-1.0, 1.0], [1.0, 1.0]]) * 2 ** 0.5, teacher)) == pytest.approx(1.0)
    assert float(hint_loss(torch.ones(1, 2), teacher[:1])) == 0.0  # one image: nothing to learn from


def test_hinted_student_trains_the_student_and_deploys_without_the_projection():
    student = _model()
    hinted = HintedStudent(student, teacher_dim=40)
    x = torch.randn(4, 3, 16, 16)
    logits, projected = hinted(x, with_hint=True)
    assert projected.shape == (4, 40)
    torch.testing.assert_close(hinted(x), logits)
    assert [g for g, _ in hinted.layer_groups()][-2:] == ["head", "hint"]
    plain = hinted.plain()
    assert type(plain) is TransferModel and not any(k.startswith("hint.") for k in plain.state_dict())
    torch.testing.assert_close(plain(x), logits)
    assert plain.head is student.head and plain.backbone is student.backbone  # the same trained modules


def test_distillation_loss_adds_the_weighted_hint_on_the_teachers_features():
    cfg = DataConfig(input_size=16, crop_pct=1.0)
    teacher, student = _model(seed=1), HintedStudent(_model(seed=2), teacher_dim=256)
    images = torch.randn(6, 3, 16, 16)
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    batch = Batch(images, labels, torch.arange(6), labels, None)
    kd = DistillationLoss(teacher, cfg, cfg, temperature=4.0, alpha=0.9, live=True, feature_weight=0.5)
    value = kd(student, batch)
    with torch.no_grad():
        features = teacher.backbone(images)
        teacher_logits = teacher.head(features)
        logits, projected = student(images, with_hint=True)
    expected = distillation_loss(logits, teacher_logits, labels, 4.0, 0.9) + 0.5 * hint_loss(projected, features)
    assert float(value.detach()) == pytest.approx(float(expected), rel=1e-5)
    value.backward()
    assert student.hint.weight.grad is not None and student.hint.weight.grad.abs().sum() > 0
    # without the hint the same loss is plain Hinton KD on an ordinary model
    plain = DistillationLoss(teacher, cfg, cfg, live=True)(student.plain(), batch).detach()
    assert float(plain) == pytest.approx(float(distillation_loss(logits, teacher_logits, labels)), rel=1e-5)


@pytest.mark.parametrize("bad", [-1.0, float("nan")])
def test_bad_feature_weight_is_refused_with_the_setting_named(bad):
    with pytest.raises(ValueError, match="--feature-weight"):
        check_feature_weight(bad)
