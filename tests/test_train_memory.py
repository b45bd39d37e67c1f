"""Training memory: a batch taken in micro-batches gives the batch's gradient (frozen BatchNorm), the memory
budget picks the micro-batch from what one image keeps for backward, checkpointed stages give the same
gradients and leave the model as it was."""
from __future__ import annotations

import pytest
import torch

from conftest import write_class_tree
from tlearn.backbones.model import TransferModel, load_backbone
from tlearn.data.layout import load_splits
from tlearn.train import Phase, TrainOptions, train
from tlearn.train.losses import Batch, BinaryCrossEntropy
from tlearn.train.memory import (STEP_OVERHEAD, checkpointed, micro_slices, plan_micro_batch,
                                 saved_bytes_per_image, stage_container)


@pytest.fixture(scope="module")
def tiny_splits(tmp_path_factory):
    root = write_class_tree(tmp_path_factory.mktemp("mem") / "tiny", {"red": 8, "green": 8, "blue": 8}, size=36)
    return load_splits(root, 0.25, 0)


def model_from(state=None) -> TransferModel:
    backbone, info = load_backbone("efficientnet_lite0", "none")
    if state is not None:
        backbone.load_state_dict(state)
    backbone.drop_rate = 0.0  # the pooled-feature dropout draws its masks per forward pass
    torch.manual_seed(0)
    return TransferModel(backbone, info.feature_dim, 3, info.architecture)


def test_micro_slices_cover_the_batch_in_near_equal_parts():
    assert micro_slices(32, 8) == [slice(0, 8), slice(8, 16), slice(16, 24), slice(24, 32)]
    for n, m in ((37, 8), (5, 32), (7, 1), (9, 4)):
        parts = micro_slices(n, m)
        sizes = [p.stop - p.start for p in parts]
        assert sum(sizes) == n and max(sizes) <= m and max(sizes) - min(sizes) <= 1
        assert parts[0].start == 0 and all(a.stop == b.start for a, b in zip(parts, parts[1:]))
        assert len(parts) == -(-n // m)


def test_plan_fits_the_budget_next_to_the_process_and_its_workers():
    mb = 1e6
    assert plan_micro_batch(32, 10 * mb, 1000 * mb, 10_000 * mb, 0) == 32  # plenty: the whole batch
    # 3000 MB left after the process and one worker like it
    assert plan_micro_batch(32, 10 * mb, 1000 * mb, 5000 * mb, 1) == 32
    assert plan_micro_batch(32, 100 * mb, 1000 * mb, 5000 * mb, 1) == int(3000 // (100 * STEP_OVERHEAD))
    assert plan_micro_batch(32, 100 * mb, 1000 * mb, 1500 * mb, 1) == 0  # nothing fits


def test_saved_bytes_grow_with_the_pixels_and_leave_the_model_as_it_was():
    model = model_from()
    model.train()
    model.head.requires_grad_(False)
    bn = next(m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))
    before = bn.running_mean.clone()
    small, large = saved_bytes_per_image(model, 32), saved_bytes_per_image(model, 64)
    assert 3.0 < large / small < 5.0  # activations scale with the pixels
    assert saved_bytes_per_image(model, 64, "bf16") < 0.75 * large
    assert model.training and not model.head.weight.requires_grad and torch.equal(bn.running_mean, before)


def test_checkpointed_stages_give_the_same_gradients_and_keys():
    model = model_from()
    model.train()
    x = torch.randn(2, 3, 32, 32)

    def grads():
        model.zero_grad()
        model(x).square().sum().backward()
        return {n: p.grad.clone() for n, p in model.named_parameters()}

    plain, keys = grads(), list(model.state_dict())
    with checkpointed(model, 3) as n:
        assert n == 3
        again = grads()
        assert list(model.state_dict()) == keys
    for name in plain:
        assert torch.allclose(plain[name], again[name], atol=1e-5), name
    assert "forward" not in vars(stage_container(model.backbone))


def test_binary_cross_entropy_of_a_mixed_batch_adds_up_over_its_parts():
    torch.manual_seed(1)
    targets = torch.randint(0, 2, (10, 4)).float()
    logits = torch.randn(6, 4)
    model = lambda images: logits[images[:, 0].long()]  # noqa: E731  (the image holds its row)
    loss = BinaryCrossEntropy(targets)
    indices = torch.tensor([7, 2, 9, 0, 4, 5])
    perm = torch.tensor([3, 5, 0, 1, 2, 4])
    images = torch.arange(6).float()[:, None]
    whole = loss(model, Batch(images, indices, indices, indices, (perm, 0.7)))
    parts = [loss(model, Batch(images[p], indices[p], indices[p], indices[p], (perm, 0.7), partners=indices[perm][p]))
             * (p.stop - p.start) / 6 for p in micro_slices(6, 4)]
    assert float(sum(parts)) == pytest.approx(float(whole), rel=1e-6)


def test_micro_batches_train_like_the_whole_batch_with_frozen_batchnorm(tiny_splits, tmp_path):
    state = load_backbone("efficientnet_lite0")[0].state_dict()
    cfg = load_backbone("efficientnet_lite0")[1].data_config.with_size(32)
    results = []
    for micro in (None, 3):
        model = model_from(state)
        groups = [g for g, _ in model.layer_groups()]
        opts = TrainOptions(batch_size=8, micro_batch=micro, num_workers=0, progress=False, freeze_bn=True,
                            l2_sp=0.1, optimizer="sgd", cache_dir=str(tmp_path / "cache"), seed=2)
        results.append(train(model, [Phase("all", 1, {g: 1e-2 for g in groups})], tiny_splits.train,
                             tiny_splits.val, cfg, opts))
    whole, micro = results
    for a, b in zip(whole.history, micro.history):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-4)
        assert a["val_loss"] == pytest.approx(b["val_loss"], rel=1e-4)
    for (name, a), b in zip(whole.model.state_dict().items(), micro.model.state_dict().values()):
        assert torch.allclose(a.float(), b.float(), atol=1e-4), name
    backbone = {k.removeprefix("backbone."): v for k, v in whole.model.state_dict().items()}
    assert any(not torch.allclose(backbone[k].float(), v.float(), atol=1e-4) for k, v in state.items())  # it trained


def test_threaded_batches_come_in_order_and_a_consumer_may_stop_early():
    from tlearn.data.prefetch import ThreadedBatches, batches_of

    made = []

    class Items:
        def __getitem__(self, i):
            made.append(i)
            return i * 10

    batches = ThreadedBatches(Items(), batches_of(11, 3), list, threads=2, ahead=2)
    assert len(batches) == 4 and list(batches) == [[0, 10, 20], [30, 40, 50], [60, 70, 80], [90, 100]]
    made.clear()
    it = iter(batches)
    assert next(it) == [0, 10, 20]
    it.close()
    assert len(made) <= 3 * 3  # the batch taken and at most `ahead` more were made


def test_batch_normalisation_matches_the_per_image_eval_transform(tmp_path):
    from conftest import write_class_tree as tree
    from tlearn.data.images import load_rgb
    from tlearn.data.layout import list_images
    from tlearn.data.transforms import DataConfig, eval_transform
    from tlearn.features.extract import ImageFiles, NormalizingCollate

    files = list_images(tree(tmp_path / "img", {"a": 3}, size=50))
    cfg = DataConfig(input_size=32, mean=(0.5, 0.4, 0.3), std=(0.2, 0.25, 0.3))
    data = ImageFiles(files, cfg)
    index, batch, failed = NormalizingCollate(cfg)([data[i] for i in range(len(files))])
    expected = torch.stack([eval_transform(cfg)(load_rgb(f, draft_size=cfg.resize_size)) for f in files])
    assert torch.allclose(batch, expected, atol=1e-6) and batch.is_contiguous(memory_format=torch.channels_last)
    assert index.tolist() == [0, 1, 2] and failed == []


def test_decoded_squares_are_read_from_the_file_as_the_mapping_holds_them(tmp_path):
    import pickle

    from conftest import write_class_tree as tree
    from tlearn.data.decoded_cache import as_chw_tensor, decode_images
    from tlearn.data.layout import load_splits
    from tlearn.data.transforms import DataConfig

    splits = load_splits(tree(tmp_path / "img", {"a": 3, "b": 2}, size=40), 0.0, 0)
    decoded = decode_images(splits.train, DataConfig(input_size=32), tmp_path / "cache")
    again = pickle.loads(pickle.dumps(decoded))  # what a spawned worker gets
    for k in range(len(decoded)):
        assert torch.equal(decoded.square(k), as_chw_tensor(decoded.images[k]))
        assert torch.equal(again.square(k), decoded.square(k))


def test_default_micro_batch_caps_activations_on_the_cpu_only_with_frozen_batchnorm(caplog):
    from tlearn.train.memory import micro_batch, resident_bytes

    model, cpu = model_from(), torch.device("cpu")
    frozen = TrainOptions(batch_size=32, freeze_bn=True)
    assert micro_batch(model, frozen, 224, "fp32", cpu, 0) == 8  # ~80 MB per 224 px image kept for backward
    assert micro_batch(model, frozen, 32, "fp32", cpu, 0) == 32  # small images: one pass
    assert micro_batch(model, TrainOptions(batch_size=32), 224, "fp32", cpu, 0) == 32  # BatchNorm trains
    assert micro_batch(model, TrainOptions(batch_size=32, micro_batch=5), 224, "fp32", cpu, 0) == 5
    with caplog.at_level("INFO", logger="tlearn"):
        assert micro_batch(model, TrainOptions(batch_size=32, memory_budget=0.1), 224, "fp32", cpu, 0) == 1
        assert "over budget" in caplog.text
        generous = micro_batch(model, TrainOptions(batch_size=32, memory_budget=64), 224, "fp32", cpu, 1)
        assert generous == 32 and "BatchNorm" not in caplog.text.split("memory-budget 64")[-1]
        budget = resident_bytes() / 1e9 + 1.0  # a GB beyond what this process holds: about 10 images
        assert 1 < micro_batch(model, TrainOptions(batch_size=32, memory_budget=budget), 224, "fp32", cpu, 0) < 32
        assert "BatchNorm trains" in caplog.text


def test_memory_budget_option_is_checked_and_reaches_the_loop():
    from tlearn.config import FitConfig
    from tlearn.errors import TlearnError
    from tlearn.strategies.finetune import FineTune, train_options

    with pytest.raises(TlearnError, match="--memory-budget"):
        FitConfig(data="d", out="o", memory_budget=0)
    cfg = FitConfig(data="d", out="o", strategy="finetune", memory_budget=2.5)

    class Ctx:
        precision, cache_dir, out = "fp32", "/tmp/cache", "/tmp/run"

    assert train_options(cfg, Ctx(), FineTune(cfg)).memory_budget == 2.5
    with pytest.raises(ValueError, match="--memory-budget"):
        TrainOptions(memory_budget=-1.0)
