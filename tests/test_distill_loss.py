"""Hinton distillation loss: known values, T^2 scaling, temperature and alpha handling, unlabeled rows."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from tlearn.distill.loss import distillation_loss, soft_loss, soft_targets


def _kl(p: list[float], q: list[float]) -> float:
    return sum(a * math.log(a / b) for a, b in zip(p, q))


def test_soft_loss_known_value_at_temperature_1():
    teacher = torch.tensor([[math.log(0.25), math.log(0.75)]])
    student = torch.zeros(1, 2)  # uniform
    assert soft_loss(student, teacher, 1.0).item() == pytest.approx(_kl([0.25, 0.75], [0.5, 0.5]), rel=1e-5)
    assert soft_loss(student, teacher, 1.0).item() == pytest.approx(0.130812, abs=1e-5)


def test_soft_loss_known_value_at_temperature_2_is_scaled_by_t_squared():
    teacher = torch.tensor([[math.log(0.25), math.log(0.75)]])
    student = torch.zeros(1, 2)
    # At T=2 the teacher's probabilities are proportional to sqrt(0.25), sqrt(0.75).
    p = [math.sqrt(0.25), math.sqrt(0.75)]
    p = [x / sum(p) for x in p]
    expected = 4.0 * _kl(p, [0.5, 0.5])
    assert soft_loss(student, teacher, 2.0).item() == pytest.approx(expected, rel=1e-5)
    assert expected == pytest.approx(0.14535, abs=1e-4)


def test_identical_outputs_have_zero_soft_loss_and_loss_is_non_negative():
    logits = torch.randn(8, 5)
    assert soft_loss(logits, logits, 4.0).item() == pytest.approx(0.0, abs=1e-6)
    assert soft_loss(torch.randn(8, 5), logits, 4.0).item() > 0


def test_alpha_mixes_soft_and_hard_terms():
    torch.manual_seed(0)
    s, t, y = torch.randn(6, 4), torch.randn(6, 4), torch.tensor([0, 1, 2, 3, 0, 1])
    ce = F.cross_entropy(s, y).item()
    soft = soft_loss(s, t, 3.0).item()
    assert distillation_loss(s, t, y, temperature=3.0, alpha=0.0).item() == pytest.approx(ce, rel=1e-5)
    assert distillation_loss(s, t, y, temperature=3.0, alpha=1.0).item() == pytest.approx(soft, rel=1e-5)
    assert distillation_loss(s, t, y, temperature=3.0, alpha=0.7).item() == pytest.approx(0.7 * soft + 0.3 * ce,
                                                                                          rel=1e-5)


def test_unlabeled_rows_contribute_only_the_soft_term():
    torch.manual_seed(1)
    s, t = torch.randn(4, 3), torch.randn(4, 3)
    y = torch.tensor([2, -1, 0, -1])
    per_soft = soft_loss(s, t, 4.0, reduction="none")
    per_ce = F.cross_entropy(s[[0, 2]], y[[0, 2]], reduction="none")
    expected = (0.5 * per_soft.sum() + 0.5 * per_ce.sum()) / 4
    assert distillation_loss(s, t, y, temperature=4.0, alpha=0.5).item() == pytest.approx(expected.item(), rel=1e-5)
    all_unlabeled = torch.full((4,), -1)
    assert distillation_loss(s, t, all_unlabeled, 4.0, 0.5).item() == pytest.approx(0.5 * per_soft.mean().item(),
                                                                                    rel=1e-5)


def test_t_squared_keeps_gradient_scale_across_temperatures():
    """Without the T^2 factor the soft gradients would shrink ~4x from T=4 to T=8 (Hinton et al.)."""
    torch.manual_seed(2)
    teacher = torch.randn(16, 10)
    norms = {}
    for t in (4.0, 8.0):
        student = torch.randn(16, 10, generator=torch.Generator().manual_seed(3)).requires_grad_()
        soft_loss(student, teacher, t).backward()
        norms[t] = student.grad.norm().item()
    assert 0.7 < norms[8.0] / norms[4.0] < 1.3


def test_higher_temperature_softens_targets():
    logits = torch.tensor([[4.0, 1.0, 0.0]])
    entropy = lambda p: -(p * p.log()).sum().item()  # noqa: E731
    assert entropy(soft_targets(logits, 1.0)) < entropy(soft_targets(logits, 4.0)) < entropy(soft_targets(logits, 20.0))
    assert soft_targets(logits, 4.0).sum().item() == pytest.approx(1.0)


@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), float("inf")])
def test_bad_temperature_is_refused_with_the_setting_named(bad):
    with pytest.raises(ValueError, match="--temperature"):
        soft_loss(torch.zeros(1, 2), torch.zeros(1, 2), bad)


@pytest.mark.parametrize("bad", [-0.1, 1.5])
def test_bad_alpha_is_refused(bad):
    with pytest.raises(ValueError, match="--alpha"):
        distillation_loss(torch.zeros(1, 2), torch.zeros(1, 2), torch.tensor([0]), 4.0, bad)
