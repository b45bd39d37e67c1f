"""The training loop through its Python API on tiny images: resume equals an uninterrupted run, the loss
hook sees sample indices, budgets stop training, history rows and checkpoints are written."""
from __future__ import annotations

import json

import pytest
import torch

from conftest import write_class_tree
from tlearn.backbones.model import TransferModel, load_backbone
from tlearn.data.layout import load_splits
from tlearn.errors import TlearnError
from tlearn.train import CrossEntropy, Phase, TrainOptions, discriminative_lrs, train
from tlearn.train.selection import kept_row


@pytest.fixture(scope="module")
def tiny_splits(tmp_path_factory):
    root = write_class_tree(tmp_path_factory.mktemp("loop") / "tiny", {"red": 10, "green": 10, "blue": 10}, size=36)
    return load_splits(root, 0.2, 0)


@pytest.fixture(scope="module")
def pretrained():
    backbone, info = load_backbone("efficientnet_lite0")
    return {k: v.clone() for k, v in backbone.state_dict().items()}, info


def fresh_model(pretrained) -> TransferModel:
    state, info = pretrained
    backbone, _ = load_backbone("efficientnet_lite0", "none")
    backbone.load_state_dict(state)
    torch.manual_seed(0)
    return TransferModel(backbone, info.feature_dim, 3, info.architecture)


def phases_for(model) -> list[Phase]:
    groups = [g for g, _ in model.layer_groups()]
    return [Phase("head", 1, {"head": 1e-2}), Phase("all", 2, discriminative_lrs(groups, 2e-3, 10), 0.5)]


def options(tmp_path, **kw) -> TrainOptions:
    base = dict(batch_size=8, num_workers=0, progress=False, checkpoint_dir=str(tmp_path / "ckpt"),
                cache_dir=str(tmp_path / "cache"), augment="light", seed=3)
    return TrainOptions(**{**base, **kw})


def run(pretrained, splits, opts, **kw):
    model = fresh_model(pretrained)
    cfg = pretrained[1].data_config.with_size(32)
    return train(model, phases_for(model), splits.train, splits.val, cfg, opts, **kw)


def test_resume_after_an_interruption_equals_the_uninterrupted_run(pretrained, tiny_splits, tmp_path):
    full = run(pretrained, tiny_splits, options(tmp_path / "a"))
    assert [r["epoch"] for r in full.history] == [1, 2, 3] and full.stopped == "completed"
    for key in ("lr", "train_loss", "val_loss", "val_accuracy", "seconds", "phase", "val_macro_f1"):
        assert key in full.history[-1]
    ckpt = tmp_path / "a" / "ckpt"
    assert json.loads((ckpt / "last.json").read_text())["epoch"] == 3 and (ckpt / "best.safetensors").is_file()

    stopped = run(pretrained, tiny_splits, options(tmp_path / "b"), on_epoch=lambda row: row["epoch"] == 2)
    assert stopped.stopped == "callback" and len(stopped.history) == 2
    resumed = run(pretrained, tiny_splits, options(tmp_path / "b", resume=True))
    assert [r["epoch"] for r in resumed.history] == [1, 2, 3]
    for a, b in zip(full.history, resumed.history):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-4)
        assert a["val_accuracy"] == pytest.approx(b["val_accuracy"], abs=1e-9)
    for (name, a), b in zip(full.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.allclose(a.float(), b.float(), atol=1e-4), name

    with pytest.raises(TlearnError, match="label_smoothing"):
        run(pretrained, tiny_splits, options(tmp_path / "b", resume=True, label_smoothing=0.3))


def test_loss_hook_sees_sample_indices_and_budgets_stop_training(pretrained, tiny_splits, tmp_path):
    seen: list[int] = []
    base = CrossEntropy()

    def loss(model, batch):
        seen.extend(batch.indices.tolist())
        assert batch.targets.shape == (len(batch.images),)
        return base(model, batch)

    result = run(pretrained, tiny_splits, options(tmp_path, checkpoint_dir=None, max_epochs=1), loss=loss)
    assert sorted(seen) == list(range(len(tiny_splits.train)))
    assert result.stopped == "epoch cap" and len(result.history) == 1
    timed = run(pretrained, tiny_splits, options(tmp_path, checkpoint_dir=None, max_seconds=1e-3))
    assert timed.stopped == "time budget" and len(timed.history) == 1


def test_one_se_keeps_the_epoch_the_offline_rule_names(pretrained, tiny_splits, tmp_path):
    result = run(pretrained, tiny_splits, options(tmp_path, checkpoint_dir=None, keep_epoch="one-se"))
    assert result.best_epoch == kept_row(result.history, "one-se", len(tiny_splits.val))["epoch"]
    with pytest.raises(ValueError):
        TrainOptions(keep_epoch="last")


def test_strong_augmentation_mixes_targets_and_still_learns(pretrained, tiny_splits, tmp_path):
    kinds = set()

    def loss(model, batch):
        kinds.add(batch.targets.dtype)
        return CrossEntropy()(model, batch)

    result = run(pretrained, tiny_splits, options(tmp_path, checkpoint_dir=None, augment="strong"), loss=loss)
    assert kinds == {torch.float32}
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"] + 0.5


def test_weight_average_follows_the_warmed_up_decay():
    from tlearn.train.ema import WeightAverage

    model = torch.nn.BatchNorm1d(2)
    average = WeightAverage(model, 0.9)
    with torch.no_grad():
        model.weight.fill_(3.0)
        model.num_batches_tracked.fill_(5)
    average.update(model)  # step 1: decay min(0.9, 2/11)
    decay = 2 / 11
    assert torch.allclose(average.state["weight"], torch.full((2,), decay * 1.0 + (1 - decay) * 3.0))
    assert int(average.state["num_batches_tracked"]) == 5
    for _ in range(200):
        average.update(model)
    assert average.current_decay() == 0.9 and torch.allclose(average.state["weight"], torch.full((2,), 3.0))
    with pytest.raises(ValueError, match="between 0 and 1"):
        WeightAverage(model, 1.0)


def test_averaged_weights_are_kept_and_survive_resume(pretrained, tiny_splits, tmp_path):
    full = run(pretrained, tiny_splits, options(tmp_path / "a", ema=0.9))
    raw = run(pretrained, tiny_splits, options(tmp_path / "raw"))
    assert full.history[0]["train_loss"] == pytest.approx(raw.history[0]["train_loss"], rel=1e-5)  # same training
    differs = [not torch.allclose(a.float(), b.float(), atol=1e-6)
               for a, b in zip(full.model.state_dict().values(), raw.model.state_dict().values())]
    assert any(differs)  # what is kept is the average, not the last weights
    assert (tmp_path / "a" / "ckpt" / "epoch-0003" / "ema.safetensors").is_file()

    run(pretrained, tiny_splits, options(tmp_path / "b", ema=0.9), on_epoch=lambda row: row["epoch"] == 2)
    resumed = run(pretrained, tiny_splits, options(tmp_path / "b", ema=0.9, resume=True))
    for a, b in zip(full.history, resumed.history):
        assert a["val_loss"] == pytest.approx(b["val_loss"], rel=1e-4)
    for (name, a), b in zip(full.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.allclose(a.float(), b.float(), atol=1e-4), name


def test_l2_sp_penalty_measures_the_distance_from_the_starting_weights():
    from tlearn.train.l2sp import StartingPointPenalty

    torch.manual_seed(0)
    model = TransferModel(torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 2)), 2, 2, "compact_cnn")
    penalty = StartingPointPenalty(model, alpha=0.5)
    assert float(penalty(model).detach()) == 0.0
    with torch.no_grad():
        model.backbone[0].weight += 0.1  # 12 weights moved by 0.1
        model.head.weight += 5.0  # the new head is not anchored: it has no pretrained value
    assert float(penalty(model).detach()) == pytest.approx(0.5 * 0.5 * 12 * 0.01, rel=1e-5)
    model.backbone[0].weight.requires_grad_(False)  # frozen weights cost nothing
    assert float(penalty(model).detach()) == 0.0
    with pytest.raises(ValueError, match="--l2-sp"):
        StartingPointPenalty(model, alpha=-1.0)


def _distance(model, pretrained) -> float:
    state = model.backbone.state_dict()
    return sum(float((state[k].float() - v.float()).pow(2).sum()) for k, v in pretrained[0].items()
               if v.is_floating_point() and "running" not in k)


def test_l2_sp_keeps_the_backbone_near_its_pretrained_weights_and_survives_resume(pretrained, tiny_splits, tmp_path):
    free = run(pretrained, tiny_splits, options(tmp_path / "free"))
    anchored = run(pretrained, tiny_splits, options(tmp_path / "a", l2_sp=100.0))
    assert _distance(anchored.model, pretrained) < 0.5 * _distance(free.model, pretrained)
    # the logged train loss is the data loss alone: the penalty is added for the backward pass only
    assert anchored.history[0]["train_loss"] == pytest.approx(free.history[0]["train_loss"], rel=0.2)

    run(pretrained, tiny_splits, options(tmp_path / "b", l2_sp=100.0), on_epoch=lambda row: row["epoch"] == 2)
    resumed = run(pretrained, tiny_splits, options(tmp_path / "b", l2_sp=100.0, resume=True))
    for (name, a), b in zip(anchored.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.allclose(a.float(), b.float(), atol=1e-4), name  # anchored to the start, not the checkpoint
