"""Stored teacher views (--views, --recipe stored) and the distillation budget (--budget-minutes)."""
from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from conftest import write_class_tree
from tlearn.backbones import load_backbone
from tlearn.backbones.model import TransferModel
from tlearn.data.decoded_cache import decode_images
from tlearn.data.layout import Sample
from tlearn.data.transforms import DataConfig
from tlearn.distill import distill, stored_views
from tlearn.distill.budget import DistillCosts, Workload, plan_schedule
from tlearn.distill.config import DistillConfig
from tlearn.distill.loss import StoredViewLoss, soft_loss
from tlearn.distill.stored_views import (StoredViewImages, ViewGeometry, choose_precision, compress, draw_views,
                                         expand, teacher_views)
from tlearn.distill.views import ViewMixer, convert_view
from tlearn.errors import TlearnError
from tlearn.fitting import fit
from tlearn.result_cache import result_path
from tlearn.train.losses import Batch

TEACHER_CFG = DataConfig(input_size=24, crop_pct=1.0)
STUDENT_CFG = DataConfig(input_size=16, crop_pct=1.0)


def _teacher(seed: int = 0, classes: int = 3) -> TransferModel:
    """A random compact CNN with a sharpened head: confident, view-dependent outputs."""
    torch.manual_seed(seed)
    backbone, info = load_backbone("compact_cnn", "none")
    model = TransferModel(backbone, info.feature_dim, classes, info.architecture).eval()
    with torch.no_grad():
        model.head.weight.mul_(30.0)
    return model


@pytest.fixture(scope="module")
def colours(tmp_path_factory):
    return write_class_tree(tmp_path_factory.mktemp("colours") / "data", {"red": 8, "green": 8, "blue": 8},
                            size=32)


@pytest.fixture
def decoded(colours, tmp_path):
    samples = [Sample(p, i % 3) for i, p in enumerate(sorted(colours.rglob("*.png")))]
    return decode_images(samples, TEACHER_CFG, tmp_path / "cache")


def _geometry(decoded, augment="light") -> ViewGeometry:
    return ViewGeometry.for_preset(augment, TEACHER_CFG, decoded.images.shape[1])


def _count_teacher_views(monkeypatch) -> list[int]:
    judged: list[int] = []
    real = stored_views._teacher_probs

    def counting(teacher, x, precision):
        judged.append(len(x))
        return real(teacher, x, precision)

    monkeypatch.setattr(stored_views, "_teacher_probs", counting)
    return judged


def test_stored_views_reproduce_the_teacher_on_the_same_view_and_the_student_gets_that_view(decoded, tmp_path):
    teacher = _teacher()
    views = teacher_views(teacher, TEACHER_CFG, decoded, _geometry(decoded), 3, 3, tmp_path / "c", precision="fp32")
    assert views.probs.shape == (len(decoded), 3, 3) and views.precision == "fp32"
    assert len({tuple(b) for b in views.boxes.reshape(-1, 4)}) > len(decoded)  # views differ
    assert views.flips.any() and not views.flips.all()  # light mirrors about half of them
    assert views.probs.max(-1).mean() > 0.6  # a confident teacher: the comparison below is not trivial
    dataset = StoredViewImages(decoded, views, STUDENT_CFG, seed=4)
    for k in (0, 5, 17):
        for v in range(3):
            x = views.teacher_input(decoded, k, v, TEACHER_CFG)
            own = torch.softmax(teacher(x), 1)[0].detach().numpy()
            np.testing.assert_allclose(views.probs[k, v], own, atol=2e-3)
        # the student's item is one of the stored views, at its size, and the index names that view
        dataset.epoch = 2
        row, image, label = dataset[k]
        v = row - k * 3
        assert 0 <= v < 3 and image.shape == (3, 16, 16) and label == int(decoded.labels[k])
        same = convert_view(views.teacher_input(decoded, k, v, TEACHER_CFG), TEACHER_CFG, STUDENT_CFG)[0]
        other = convert_view(views.teacher_input(decoded, k, (v + 1) % 3, TEACHER_CFG), TEACHER_CFG, STUDENT_CFG)[0]
        assert (image - same).abs().mean() < 0.1 < (image - other).abs().mean()
    # every view once in each cycle of K epochs
    assert sorted(dataset.view_of(7, e) for e in (1, 2, 3)) == [0, 1, 2]


def test_view_v_is_the_same_whatever_the_number_of_views(decoded):
    geometry = _geometry(decoded)
    boxes5, flips5 = draw_views(10, 0, 5, geometry)
    boxes, flips = draw_views(10, 2, 5, geometry)
    assert (boxes5[:, 2:] == boxes).all() and (flips5[:, 2:] == flips).all()
    centre, _ = draw_views(4, 0, 2, _geometry(decoded, "none"))
    assert (centre == centre[0, 0]).all()  # none: the eval view, every time


def test_views_are_read_back_without_the_teacher_and_only_missing_views_are_computed(decoded, tmp_path, monkeypatch):
    teacher, cache = _teacher(), tmp_path / "c"
    judged = _count_teacher_views(monkeypatch)
    first = teacher_views(teacher, TEACHER_CFG, decoded, _geometry(decoded), 2, 3, cache, precision="fp32")
    assert sum(judged) >= 2 * len(decoded) and first.from_cache == 0
    judged.clear()
    again = teacher_views(teacher, TEACHER_CFG, decoded, _geometry(decoded), 2, 3, cache, precision="fp32")
    fewer = teacher_views(teacher, TEACHER_CFG, decoded, _geometry(decoded), 1, 3, cache, precision="fp32")
    assert judged == [] and again.from_cache == 2 and fewer.k == 1
    np.testing.assert_allclose(again.probs, first.probs, atol=1e-3)
    assert (again.boxes == first.boxes).all() and (fewer.boxes[:, 0] == first.boxes[:, 0]).all()
    more = teacher_views(teacher, TEACHER_CFG, decoded, _geometry(decoded), 3, 3, cache, precision="fp32")
    # only the third view is new (the precision and the mixing check come with the stored ones)
    assert sum(judged) == len(decoded) and more.k == 3 and more.from_cache == 2
    assert (more.boxes[:, :2] == first.boxes).all()
    # another teacher (other weights) does not read these views
    judged.clear()
    teacher_views(_teacher(seed=1), TEACHER_CFG, decoded, _geometry(decoded), 1, 3, cache, precision="fp32")
    assert sum(judged) >= len(decoded)


@pytest.mark.parametrize("damage", ["garbage", "negative", "box"])
def test_a_damaged_views_entry_is_refused_and_rebuilt(decoded, tmp_path, monkeypatch, caplog, damage):
    teacher, cache = _teacher(), tmp_path / "c"
    good = teacher_views(teacher, TEACHER_CFG, decoded, _geometry(decoded), 2, 3, cache, precision="fp32")
    [path] = list((cache / stored_views.KIND).glob("*.npz"))
    if damage == "garbage":
        path.write_bytes(b"not a zip file at all")
    else:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
        if damage == "negative":
            arrays["probs"] = -arrays["probs"]
        else:
            arrays["boxes"][3, 1, 0] = 10_000  # a crop outside the square
        with open(path, "wb") as f:
            np.savez(f, **arrays)
    judged = _count_teacher_views(monkeypatch)
    with caplog.at_level(logging.WARNING, logger="tlearn"):
        rebuilt = teacher_views(teacher, TEACHER_CFG, decoded, _geometry(decoded), 2, 3, cache, precision="fp32")
    assert str(path) in caplog.text and "invalid" in caplog.text
    assert sum(judged) >= 2 * len(decoded) and rebuilt.from_cache == 0
    np.testing.assert_allclose(rebuilt.probs, good.probs, atol=1e-3)
    judged.clear()
    teacher_views(teacher, TEACHER_CFG, decoded, _geometry(decoded), 2, 3, cache, precision="fp32")
    assert judged == []  # the rebuilt entry is whole again
    assert path == result_path(cache, stored_views.KIND, path.stem)


def test_bf16_is_used_only_where_it_agrees_with_fp32(decoded, monkeypatch):
    teacher = _teacher()
    boxes, flips = draw_views(len(decoded), 0, 1, _geometry(decoded))
    monkeypatch.setattr(stored_views, "bf16_supported", lambda device: True)
    real = stored_views._teacher_probs

    def disagreeing(model, x, precision):
        p = real(model, x, "fp32")
        return p[:, ::-1].copy() if precision == "bf16" else p  # another class on top

    monkeypatch.setattr(stored_views, "_teacher_probs", disagreeing)
    used, checks = choose_precision(teacher, TEACHER_CFG, decoded, boxes, flips, "auto", 8)
    assert used == "fp32" and checks["bf16"].startswith("disagrees") and checks["bf16_top1_agreement"] < 0.99
    assert checks["seconds_per_view"] > 0
    monkeypatch.setattr(stored_views, "_teacher_probs", real)
    used, checks = choose_precision(teacher, TEACHER_CFG, decoded, boxes, flips, "fp32", 8)
    assert used == "fp32" and checks["bf16"] == "not tried"


def test_many_classes_store_the_top_k_and_the_rest_spread():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, (4, 2, 43))
    probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    arrays = compress(probs.astype(np.float32), 43)
    assert set(arrays) == {"top_index", "top_prob"} and arrays["top_index"].shape == (4, 2, stored_views.TOP_K)
    back = expand(arrays, 43)
    np.testing.assert_allclose(back.sum(-1), 1.0, atol=1e-5)
    assert (back.argmax(-1) == probs.argmax(-1)).all()
    top = np.argsort(-probs, -1)[..., :stored_views.TOP_K]
    np.testing.assert_allclose(np.take_along_axis(back, top, -1), np.take_along_axis(probs, top, -1), atol=2e-3)
    assert set(compress(probs[..., :5] / probs[..., :5].sum(-1, keepdims=True), 5)) == {"probs"}


def test_mixed_views_learn_the_same_mix_of_the_stored_distributions():
    torch.manual_seed(0)
    targets = torch.softmax(torch.randn(12, 3) * 3, 1)
    student = _teacher(seed=2)
    batch = Batch(torch.randn(6, 3, 16, 16), torch.tensor([0, 1, -1, 2, -1, 0]), torch.tensor([0, 3, 5, 7, 9, 11]),
                  torch.zeros(6), None)
    value = StoredViewLoss(targets, temperature=1.0, alpha=1.0, mixer=ViewMixer(1.0, seed=3))(student, batch)
    mixed, perm, lam = ViewMixer(1.0, seed=3)(batch.images)
    p = targets[batch.indices]
    expected = soft_loss(student(mixed), torch.log(lam * p + (1 - lam) * p[perm]), 1.0)
    assert float(value.detach()) == pytest.approx(float(expected.detach()), rel=1e-5)
    # a student that outputs the stored distribution has nothing left to learn without mixing
    twin = StoredViewLoss(targets, temperature=2.0, alpha=1.0)
    logits_model = lambda x: torch.log(p)  # noqa: E731
    assert float(twin(logits_model, batch)) == pytest.approx(0.0, abs=1e-5)


def test_the_planner_fits_the_budget_and_keeps_what_was_given():
    costs = DistillCosts(student_train=0.02, student_eval=0.005, teacher_eval=0.02, teacher_view=0.02)
    work = Workload(train_images=2000, labelled_images=500, val_images=150, final_images=650)
    plan = plan_schedule(25 * 60, 60, costs, work)
    assert plan.fits and 5 <= plan.epochs and 1 <= plan.views <= plan.epochs
    assert sum(plan.estimate.values()) * 1.15 <= 25 * 60 - 60
    longer = plan_schedule(25 * 60, 60, costs, Workload(**{**work.__dict__, "views_stored": 16}))
    assert longer.epochs > plan.epochs  # views already stored cost nothing
    live = plan_schedule(25 * 60, 60, costs, Workload(**{**work.__dict__, "live_teacher": True}), stored=False)
    assert live.views == 0 and live.epochs < plan.epochs
    given = plan_schedule(25 * 60, 60, costs, work, epochs=3, views=2)
    assert (given.epochs, given.views) == (3, 2)
    tiny = plan_schedule(5, 4, costs, work)
    assert not tiny.fits and (tiny.epochs, tiny.views) == (1, 1)


def test_recipes_and_defaults():
    base = dict(data="d", out="o", teacher="t")
    pretrained = DistillConfig(**base, student="efficientnet_lite0", student_weights="pretrained")
    assert pretrained.recipe == "stored" and pretrained.budget_minutes == 25.0 and pretrained.epochs is None
    assert pretrained.views is None and pretrained.stored_views and pretrained.consistent
    assert DistillConfig(**base).recipe == "hinton" and not DistillConfig(**base).stored_views
    fixed = DistillConfig(**base, recipe="stored", epochs=6)
    assert fixed.budget_minutes is None and fixed.epochs == 6
    budgeted = DistillConfig(**base, recipe="consistent", budget_minutes=3)
    assert budgeted.epochs is None and budgeted.views == 0  # epochs planned, the teacher live
    with pytest.raises(TlearnError, match="feature"):
        DistillConfig(**base, views=4, feature_weight=1.0)


@pytest.fixture(scope="module")
def teacher_run(colours, tmp_path_factory):
    return fit(colours, tmp_path_factory.mktemp("teacher") / "run", strategy="scratch", backbone="compact_cnn",
               weights="none", image_size=24, epochs=2, augment="none", num_workers=0, progress=False)


def test_a_budgeted_stored_run_finishes_in_time_and_a_second_seed_reuses_the_views(teacher_run, tmp_path,
                                                                                  monkeypatch):
    data = tmp_path / "data"  # a fixed val folder: the training images do not change with the seed
    write_class_tree(data / "train", {"red": 6, "green": 6, "blue": 6}, size=32)
    write_class_tree(data / "val", {"red": 2, "green": 2, "blue": 2}, size=32, seed=5)
    pool = write_class_tree(tmp_path / "pool", {"x": 6, "y": 6}, size=32, seed=11)
    options = dict(recipe="stored", student_size=16, budget_minutes=0.5, unlabeled=str(pool), latency_repeats=1,
                   num_workers=0, progress=False)
    run = distill(data, teacher_run.path, tmp_path / "s0", **options)
    block = run.metrics["distillation"]
    budget, stored = block["budget"], block["stored_views"]
    assert budget["fits"] and budget["epochs"] >= 2 and budget["views"] >= 1
    assert block["seconds"]["total"] <= 30.0
    assert stored["views"] == budget["views"] and stored["images"] == 18 + 12 and stored["from_cache"] == 0
    assert 0.0 <= stored["mix"]["mean_tv"] <= 1.0 and 0.0 <= stored["mix"]["top1_agreement"] <= 1.0
    assert run.config["strategy"]["teacher_outputs"].startswith("stored")
    assert 1 <= run.config["fit"]["epochs"] <= budget["epochs"] and block["student_alone_accuracy"] is not None
    judged = _count_teacher_views(monkeypatch)
    again = distill(data, teacher_run.path, tmp_path / "s1", **{**options, "seed": 1, "views": stored["views"]})
    assert judged == [] and again.metrics["distillation"]["stored_views"]["from_cache"] == stored["views"]


def test_a_budget_too_short_still_gives_a_student(colours, teacher_run, tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="tlearn"):
        run = distill(colours, teacher_run.path, tmp_path / "s", recipe="stored", student_size=16,
                      budget_minutes=0.01, student_alone=False, latency_repeats=1, num_workers=0, progress=False)
    budget = run.metrics["distillation"]["budget"]
    assert not budget["fits"] and (budget["epochs"], budget["views"]) == (1, 1)
    assert "too short" in caplog.text and len((run.path / "history.csv").read_text().strip().splitlines()) == 2


def test_stored_views_refuse_colour_augmentation(colours, teacher_run, tmp_path):
    with pytest.raises(TlearnError, match="--views"):
        distill(colours, teacher_run.path, tmp_path / "s", recipe="stored", epochs=1, augment="medium",
                student_size=16, num_workers=0, progress=False)
