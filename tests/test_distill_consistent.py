"""Consistent teaching (--recipe consistent), the unlabeled pool at scale and the pretrained small student."""
from __future__ import annotations

import copy
from collections import Counter

import pytest
import torch

from conftest import write_class_tree
from tlearn.backbones import load_backbone
from tlearn.backbones.model import TransferModel
from tlearn.cli import main
from tlearn.data import decoded_cache
from tlearn.data.layout import Sample
from tlearn.data.transforms import DataConfig
from tlearn.distill import distill
from tlearn.distill.config import RECIPES, DistillConfig
from tlearn.distill.loss import DistillationLoss, LabelsOnlyLoss
from tlearn.distill.views import ViewMixer, convert_view, paired_view
from tlearn.errors import TlearnError
from tlearn.features import extract
from tlearn.fitting import fit
from tlearn.train.losses import Batch

TEACHER_CFG = DataConfig(input_size=24, crop_pct=1.0)
STUDENT_CFG = DataConfig(input_size=16, crop_pct=1.0)


def _model(seed: int) -> TransferModel:
    torch.manual_seed(seed)
    backbone, info = load_backbone("compact_cnn", "none")
    return TransferModel(backbone, info.feature_dim, 3, info.architecture).eval()


class _Recorder(torch.nn.Module):
    """Wraps a backbone and keeps every input it is given."""

    def __init__(self, inner: torch.nn.Module):
        super().__init__()
        self.inner, self.seen = inner, []

    def forward(self, x):
        self.seen.append(x.detach().clone())
        return self.inner(x)


def _batch(n: int = 6, size: int = 24, labels: list[int] | None = None) -> Batch:
    torch.manual_seed(3)
    images = torch.randn(n, 3, size, size)
    y = torch.tensor(labels if labels is not None else [i % 3 for i in range(n)])
    return Batch(images, y, torch.arange(n), y, None)


def test_consistent_teacher_and_student_judge_the_identical_mixed_view_each_at_its_size():
    teacher, student = _model(0), _model(1)
    teacher.backbone, student.backbone = _Recorder(teacher.backbone), _Recorder(student.backbone)
    view = paired_view(STUDENT_CFG, TEACHER_CFG)
    assert view.input_size == 24  # cut at the teacher's size, the student gets it downsampled
    kd = DistillationLoss(teacher, STUDENT_CFG, TEACHER_CFG, temperature=1.0, alpha=1.0, view=view,
                          mixer=ViewMixer(1.0, seed=5))
    batch = _batch()
    for _ in range(2):
        kd(student, batch).backward()
    assert len(teacher.backbone.seen) == len(student.backbone.seen) == 2
    for t_in, s_in in zip(teacher.backbone.seen, student.backbone.seen):
        assert t_in.shape[-1] == 24 and s_in.shape[-1] == 16
        # the student's input is exactly the teacher's pixels resized: one view, not two augmentations
        torch.testing.assert_close(s_in, convert_view(t_in, TEACHER_CFG, STUDENT_CFG))
    # the view was mixed (a new mix per batch), and it is the mix a same-seeded mixer makes of the batch
    replay = ViewMixer(1.0, seed=5)
    for t_in in teacher.backbone.seen:
        mixed, perm, lam = replay(batch.images)
        assert 0.0 < lam < 1.0 and not torch.equal(perm, torch.arange(len(perm)))
        torch.testing.assert_close(t_in, mixed)
        assert not torch.allclose(t_in, batch.images)


def test_consistent_loss_has_no_hard_label_term():
    teacher = _model(0)
    twin = copy.deepcopy(teacher)  # a student that already matches its teacher on every view
    kw = dict(temperature=1.0, view=TEACHER_CFG)
    consistent = DistillationLoss(teacher, TEACHER_CFG, TEACHER_CFG, alpha=1.0, mixer=ViewMixer(1.0, 0), **kw)
    labels_a, labels_b, unlabeled = _batch(labels=[0, 1, 2, 0, 1, 2]), _batch(labels=[2, 2, 2, 1, 1, 1]), \
        _batch(labels=[-1] * 6)
    for batch in (labels_a, labels_b, unlabeled):
        assert float(consistent(twin, batch).detach()) == pytest.approx(0.0, abs=1e-5)
    # the labels would show in hinton's loss, whose (1 - alpha) cross-entropy is not zero for the same twin
    hinton = DistillationLoss(teacher, TEACHER_CFG, TEACHER_CFG, alpha=0.5, live=True, **kw)
    hinton_a, hinton_b = float(hinton(twin, labels_a).detach()), float(hinton(twin, labels_b).detach())
    assert hinton_a > 0.1 and hinton_a != hinton_b
    with pytest.raises(ValueError, match="alpha"):
        DistillationLoss(teacher, TEACHER_CFG, TEACHER_CFG, alpha=0.9, mixer=ViewMixer(1.0, 0), **kw)


def test_student_alone_mixes_its_labels_with_the_same_view():
    student = _model(2)
    loss = LabelsOnlyLoss(STUDENT_CFG, TEACHER_CFG, mixer=ViewMixer(1.0, seed=9), num_classes=3)
    batch = _batch()
    value = float(loss(student, batch))
    mixed, perm, lam = ViewMixer(1.0, seed=9)(batch.images)
    onehot = torch.nn.functional.one_hot(batch.labels, 3).float()
    logits = student(convert_view(mixed, TEACHER_CFG, STUDENT_CFG))
    expected = torch.nn.functional.cross_entropy(logits, lam * onehot + (1 - lam) * onehot[perm])
    assert value == pytest.approx(float(expected), rel=1e-5)


def test_recipes_fill_only_what_was_not_given_and_consistent_refuses_a_label_weight():
    base = dict(data="d", out="o", teacher="t")
    hinton, consistent = DistillConfig(**base), DistillConfig(**base, recipe="consistent")
    assert (hinton.temperature, hinton.alpha, hinton.epochs, hinton.augment) == (4.0, 0.9, 30, "crop")
    assert {k: getattr(consistent, k) for k in RECIPES["consistent"]} == RECIPES["consistent"]
    assert hinton.student_alone is True and hinton.lr == 3e-3
    given = DistillConfig(**base, recipe="consistent", epochs=7, augment="crop", student_weights="pretrained")
    assert (given.epochs, given.augment, given.temperature, given.lr) == (7, "crop", 1.0, 1e-3)
    with pytest.raises(TlearnError, match="--alpha"):
        DistillConfig(**base, recipe="consistent", alpha=0.5)
    with pytest.raises(TlearnError, match="strong"):
        DistillConfig(**base, recipe="consistent", augment="strong")


def test_cli_refuses_alpha_with_the_consistent_recipe(tmp_path, capsys):
    assert main(["distill", str(tmp_path), "--teacher", str(tmp_path), "--out", str(tmp_path / "o"),
                 "--recipe", "consistent", "--alpha", "0.5"]) == 2
    assert "--alpha" in capsys.readouterr().err


@pytest.fixture(scope="module")
def colours(tmp_path_factory):
    return write_class_tree(tmp_path_factory.mktemp("colours") / "data", {"red": 10, "green": 10, "blue": 10},
                            size=24)


@pytest.fixture(scope="module")
def teacher(colours, tmp_path_factory):
    return fit(colours, tmp_path_factory.mktemp("teacher") / "run", strategy="scratch", backbone="compact_cnn",
               weights="none", image_size=24, epochs=2, augment="none", num_workers=0, progress=False)


def _count_decodes(monkeypatch) -> list[str]:
    """Every file decoded, by the training images' decoded cache or by feature (teacher output) extraction."""
    decoded: list[str] = []
    for module in (decoded_cache, extract):
        real = module.load_transformed

        def counting(path, *args, _real=real, **kwargs):
            decoded.append(str(path))
            return _real(path, *args, **kwargs)

        monkeypatch.setattr(module, "load_transformed", counting)
    return decoded


@pytest.mark.parametrize("recipe", ["hinton", "consistent"])
def test_the_unlabeled_pool_is_decoded_once_for_all_epochs_and_runs(colours, teacher, tmp_path, monkeypatch, recipe):
    pool = write_class_tree(tmp_path / "pool", {"x": 8, "y": 8}, size=24, seed=11)
    pool_files = {str(p) for p in pool.rglob("*.png")}
    decoded = _count_decodes(monkeypatch)
    options = dict(recipe=recipe, student_size=16, epochs=3, unlabeled=str(pool), student_alone=False,
                   latency_repeats=1, num_workers=0, progress=False)
    if recipe == "hinton":
        options["augment"] = "none"  # teacher outputs cached: one more decode, at the teacher's size, once
    run = distill(colours, teacher.path, tmp_path / "s0", **options)
    per_file = 2 if recipe == "hinton" else 1  # student squares (+ the cached teacher outputs' own decode)
    assert Counter(p for p in decoded if p in pool_files) == {p: per_file for p in pool_files}
    assert run.metrics["distillation"]["unlabeled_images"] == 16
    decoded.clear()
    distill(colours, teacher.path, tmp_path / "s1", **{**options, "seed": 1})
    assert not [p for p in decoded if p in pool_files]  # a second seed reads both caches back


def test_a_joined_decode_equals_the_whole_list_and_reuses_each_part(tmp_path, monkeypatch):
    a = write_class_tree(tmp_path / "a", {"x": 3}, size=20)
    b = write_class_tree(tmp_path / "b", {"y": 4}, size=20, seed=3)
    (b / "y" / "broken.png").write_bytes(b"not an image")
    part_a = [Sample(p, 0) for p in sorted(a.rglob("*.png"))]
    part_b = [Sample(p, -1) for p in sorted(b.rglob("*.png"))]
    cfg = DataConfig(input_size=16, crop_pct=1.0)
    whole = decoded_cache.decode_images(part_a + part_b, cfg, tmp_path / "whole")
    decoded = _count_decodes(monkeypatch)
    joined = decoded_cache.decode_joined([part_a, part_b], cfg, tmp_path / "parts")
    assert joined.rows == whole.rows and len(joined.rows) == 7 and not joined.from_cache
    assert [s.path for s in joined.skipped] == [s.path for s in whole.skipped] == [str(b / "y" / "broken.png")]
    assert (joined.images[:] == whole.images[:]).all()
    # the whole list is now cached under decode_images' own key, and another list reuses the shared part
    assert decoded_cache.decode_images(part_a + part_b, cfg, tmp_path / "parts").from_cache
    decoded.clear()
    decoded_cache.decode_joined([part_a[:2], part_b], cfg, tmp_path / "parts")
    assert sorted(decoded) == sorted(str(s.path) for s in part_a[:2])


def test_a_pretrained_small_student_at_its_own_size_reports_alone_figures_and_costs(colours, teacher, tmp_path):
    run = distill(colours, teacher.path, tmp_path / "lite", recipe="consistent", student="efficientnet_lite0",
                  student_weights="pretrained", student_size=32, epochs=1, latency_repeats=1, num_workers=0,
                  progress=False)
    block = run.metrics["distillation"]
    assert block["student_weights"] == "pretrained" and run.config["backbone"]["weights"] == "pretrained"
    assert block["student_input_size"] == 32 and block["teacher_input_size"] == 24
    assert block["student_alone_accuracy"] is not None and "gain_points" in block
    seconds = block["seconds"]
    assert seconds["distill_train"] > 0 and seconds["alone_train"] > 0 and seconds["total"] >= seconds["distill_train"]
    assert run.config["strategy"]["teacher_outputs"] == "live, on each mixed view"
    assert run.config["strategy"]["crop_px"] == 32  # the larger of the two training views: the student's here
    report = (run.path / "report.html").read_text()
    assert 'id="distillation"' in report and "student alone" in report and "Recipe consistent" in report


def test_unlabeled_must_be_a_folder(colours, teacher, tmp_path):
    with pytest.raises(TlearnError, match="--unlabeled .*missing"):
        distill(colours, teacher.path, tmp_path / "o", unlabeled=str(tmp_path / "missing"), progress=False)
