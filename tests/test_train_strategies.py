"""Each strategy's phases: which layer groups train, at which rates; BatchNorm modes of frozen groups."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torch.nn.modules.batchnorm import _BatchNorm

from tlearn.backbones.model import BackboneInfo, build_transfer_model
from tlearn.backbones.registry import get_spec
from tlearn.strategies import STRATEGIES
from tlearn.train import Phase, TrainOptions, discriminative_lrs, lr_at
from tlearn.train.batchnorm import bn_by_group, set_bn_modes
from tlearn.train.optim import build_optimizer, set_trainable


@pytest.fixture(scope="module")
def model():
    spec = get_spec("efficientnet_lite0")
    info = BackboneInfo("efficientnet_lite0", spec.name, spec.feature_dim, spec.data_config, "none")
    return build_transfer_model(info, 3)


def cfg(**kw):
    base = dict(epochs=None, lr=None, lr_ratio=None, head_epochs=None, unfreeze_every=1, seed=0)
    return SimpleNamespace(**{**base, **kw})


def group_names(model):
    return [name for name, _ in model.layer_groups()]


def test_finetune_warms_up_the_head_then_trains_all_with_rates_growing_to_the_head(model):
    groups = group_names(model)
    phases = STRATEGIES["finetune"](cfg(epochs=4, lr=1e-3, lr_ratio=100, head_epochs=2)).phases(groups)
    assert [p.name for p in phases] == ["head", "all"]
    assert list(phases[0].lrs) == ["head"] and phases[0].epochs == 2
    rates = [phases[1].lrs[g] for g in groups]
    assert set(phases[1].lrs) == set(groups) and phases[1].epochs == 4
    assert all(a < b for a, b in zip(rates, rates[1:]))
    assert rates[-1] == pytest.approx(1e-3) and rates[0] == pytest.approx(1e-5)
    # default: the head warm-up is the linear probe (fitted before the loop), so the loop trains all groups
    (phase,) = STRATEGIES["finetune"](cfg()).phases(groups)
    assert set(phase.lrs) == set(groups) and max(phase.lrs.values()) == phase.lrs["head"]


def test_gradual_unfreezes_one_group_from_the_top_per_step(model):
    groups = group_names(model)
    phases = STRATEGIES["gradual"](cfg(epochs=len(groups) + 2, unfreeze_every=1)).phases(groups)
    trained = [list(p.lrs) for p in phases]
    for k, names in enumerate(trained[:-1], start=1):
        assert names == groups[-k:]
    assert trained[-1] == groups and phases[-1].epochs == 3
    assert sum(p.epochs for p in phases) == len(groups) + 2


def test_lp_ft_and_scratch_train_everything_at_one_rate(model):
    groups = group_names(model)
    for name, lr in (("lp-ft", 1e-4), ("scratch", 3e-3)):
        (phase,) = STRATEGIES[name](cfg()).phases(groups)
        assert set(phase.lrs) == set(groups) and set(phase.lrs.values()) == {lr}


def test_trainable_parameters_and_optimizer_rates_follow_the_phase(model):
    groups = model.layer_groups()
    names = [g for g, _ in groups]
    phase = Phase("top2", 1, {names[-2]: 1e-4, names[-1]: 1e-3})
    set_trainable(groups, phase)
    for name, params in groups:
        assert all(p.requires_grad == (name in phase.lrs) for p in params), name
    opt = build_optimizer(groups, phase, TrainOptions(weight_decay=0.05))
    by_group = {}
    for g in opt.param_groups:
        by_group.setdefault(g["group"], set()).add(g["lr"])
        assert g["weight_decay"] == (0.05 if all(p.ndim > 1 for p in g["params"]) else 0.0)
    assert by_group == {names[-2]: {1e-4}, names[-1]: {1e-3}}
    n_opt = sum(p.numel() for g in opt.param_groups for p in g["params"])
    assert n_opt == sum(p.numel() for n, ps in groups if n in phase.lrs for p in ps)
    with pytest.raises(ValueError, match="unknown layer groups"):
        set_trainable(groups, Phase("bad", 1, {"nope": 1.0}))


def test_frozen_groups_keep_batchnorm_in_inference_mode_and_their_statistics(model):
    groups = model.layer_groups()
    names = [g for g, _ in groups]
    bn = bn_by_group(model, groups)
    trainable = {names[-2], names[-1]}
    modes = set_bn_modes(model, bn, trainable, freeze_bn=False)
    assert modes[names[-2]] == "train" and modes[names[0]] == "eval"
    for name, modules in bn.items():
        assert modules or name == "head"
        assert all(m.training == (name in trainable) for m in modules)
    frozen_bn = bn[names[0]][0]
    before = frozen_bn.running_mean.clone()
    with torch.no_grad():
        model(torch.randn(4, 3, 32, 32) * 3 + 1)
    assert torch.equal(frozen_bn.running_mean, before)
    assert set(set_bn_modes(model, bn, set(names), freeze_bn=True).values()) == {"eval"}
    assert all(not m.training for m in model.modules() if isinstance(m, _BatchNorm))


def test_discriminative_rates_and_schedule_shape():
    rates = discriminative_lrs(["a", "b", "c"], 1.0, 100.0)
    assert rates == pytest.approx({"a": 0.01, "b": 0.1, "c": 1.0})
    phase = Phase("all", 4, {"a": 1.0}, warmup_epochs=1.0, final_lr_ratio=0.01)
    assert lr_at(phase, 0.5) == pytest.approx(0.5)
    assert lr_at(phase, 1.0) == pytest.approx(1.0)
    assert lr_at(phase, 2.5) == pytest.approx(0.505)
    assert lr_at(phase, 4.0) == pytest.approx(0.01)


def test_finetune_defaults_to_l2_sp_and_medium_augmentation_others_do_not():
    from tlearn.config import FitConfig
    from tlearn.strategies.finetune import train_options

    ctx = SimpleNamespace(precision="fp32", cache_dir="/tmp/cache", out="/tmp/run")
    options = {name: train_options(FitConfig(data="d", out="o", strategy=name), ctx, STRATEGIES[name](None))
               for name in ("finetune", "gradual", "lp-ft", "scratch")}
    assert options["finetune"].l2_sp == 0.1 and options["finetune"].augment == "medium"
    assert all(o.l2_sp is None and o.augment == "light" for n, o in options.items() if n != "finetune")
    finetune = STRATEGIES["finetune"](None)
    assert train_options(FitConfig(data="d", out="o", l2_sp=0.0), ctx, finetune).l2_sp is None  # 0: off
    chosen = train_options(FitConfig(data="d", out="o", l2_sp=0.5, augment="crop"), ctx, finetune)
    assert chosen.l2_sp == 0.5 and chosen.augment == "crop"
