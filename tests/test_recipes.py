"""The data's facts choose the fine-tuning recipe (explicit options win), facts are cached, held-out figures are
given without the images copied from train, and the findings reach the summary and the report."""
from __future__ import annotations

import dataclasses
import json
import shutil

import numpy as np
import pytest
from PIL import Image

from conftest import smooth_photo, write_class_tree
from tlearn.config import FitConfig
from tlearn.data.layout import Sample, load_splits
from tlearn.data.leakage import check_leakage
from tlearn.evaluate.without_copies import figures_without_copies
from tlearn.features.facts import DataFacts
from tlearn.report.findings import copy_free_rows, findings_lines, findings_summary
from tlearn.strategies.recipes import (FROZEN_BN, SMALL_IMAGES, TRAIN_BN, apply_recipe, choose_recipe,
                                       inherited_fit, user_options)


def _facts(**over) -> DataFacts:
    base = dict(n_train=1000, n_val=200, n_classes=4, class_counts=[250] * 4, min_per_class=250,
                median_per_class=250.0, imbalance=1.0, median_short_side=300.0, grey_fraction=0.0, bn_shift=0.15,
                decode_seconds_per_image=0.005, sampled=48, seconds=1.0)
    return DataFacts(**{**base, **over})


NONE = {k: None for k in user_options(object())}


def test_natural_photos_keep_the_natural_photo_recipe():
    choice = choose_recipe(_facts(), NONE, 224)
    assert choice.name == "finetune" and choice.fired_rule is None and choice.settings == FROZEN_BN
    assert "no data rule fired" in choice.reason() and "0.150 vs 0.22" in choice.reason()


@pytest.mark.parametrize("facts, rule, fact", [
    (dict(grey_fraction=1.0), "grey images", "grey share 1.00 vs 0.9"),
    (dict(bn_shift=0.31), "far from ImageNet", "BatchNorm input shift 0.310 vs 0.22"),
])
def test_grey_or_far_from_imagenet_trains_batchnorm(facts, rule, fact):
    choice = choose_recipe(_facts(**facts), NONE, 224)
    assert choice.name == "train-bn" and choice.settings == TRAIN_BN
    assert choice.fired_rule == rule and choice.fact == fact


def test_small_images_take_the_small_image_recipe_at_their_size():
    choice = choose_recipe(_facts(median_short_side=28.0, bn_shift=0.35, grey_fraction=1.0), NONE, 224)
    assert choice.name == "small-images" and choice.fired_rule == "small images"  # first rule wins
    assert choice.settings == {**SMALL_IMAGES, "image_size": 64}
    assert choose_recipe(_facts(median_short_side=70.0), NONE, 224).settings["image_size"] == 128
    assert choose_recipe(_facts(median_short_side=80.0), NONE, 224).name == "finetune"  # above 224/3


def test_explicit_options_win_and_are_recorded():
    given = {**NONE, "lr": 5e-3, "image_size": 32, "epochs": 8}
    choice = choose_recipe(_facts(median_short_side=28.0), given, 224)
    assert choice.name == "small-images"
    assert choice.settings["lr"] == 5e-3 and choice.settings["image_size"] == 32 and choice.settings["epochs"] == 8
    assert choice.overridden == {"lr": 5e-3, "image_size": 32, "epochs": 8}
    cfg = FitConfig(data="d", out="o", strategy="finetune", lr=5e-3, freeze_bn=True)
    applied = apply_recipe(cfg, choose_recipe(_facts(bn_shift=0.3), user_options(cfg), 224))
    assert applied.lr == 5e-3 and applied.freeze_bn is True  # the user's
    assert applied.optimizer == "adamw" and applied.head_epochs == 1 and applied.l2_sp == 0.0  # the recipe's


def test_extend_inherits_the_recipe_the_facts_chose():
    recipe = choose_recipe(_facts(grey_fraction=1.0), NONE, 224).to_dict()
    probe = {"fit": {"strategy": "linear-probe", "lr": None, "optimizer": None}, "data_findings": {"recipe": recipe}}
    fit = inherited_fit(probe)
    assert fit["optimizer"] == "adamw" and fit["freeze_bn"] is False and fit["strategy"] == "linear-probe"
    finetuned = {"fit": {"lr": 2e-3, "optimizer": "adamw"}, "strategy": {"recipe": recipe}}
    assert inherited_fit(finetuned)["lr"] == 2e-3  # what the parent ran with stays
    assert inherited_fit({"fit": {"lr": None}})["lr"] is None  # an old run: the strategy's defaults


def test_facts_are_measured_once_then_read_from_the_cache(tmp_path, monkeypatch):
    import tlearn
    from tlearn.features import facts as facts_module

    root = write_class_tree(tmp_path / "tiny", {"r": 4, "g": 4}, size=36)
    samples = [Sample(p, int(p.parent.name == "g")) for p in sorted(root.rglob("*.png"))]
    backbone, info = tlearn.load_backbone("compact_cnn", "none")
    calls = []
    real = facts_module.measure_facts
    monkeypatch.setattr(facts_module, "measure_facts", lambda *a, **k: calls.append(1) or real(*a, **k))
    first, hit1 = facts_module.cached_facts(samples, [], ["r", "g"], backbone, info.data_config, tmp_path / "c")
    second, hit2 = facts_module.cached_facts(samples, [], ["r", "g"], backbone, info.data_config, tmp_path / "c")
    assert (hit1, hit2) == (False, True) and len(calls) == 1 and second.to_dict() == first.to_dict()
    assert first.median_short_side == 36.0 and first.class_counts == [4, 4]
    _, hit3 = facts_module.cached_facts(samples[:-1], [], ["r", "g"], backbone, info.data_config, tmp_path / "c")
    bigger = dataclasses.replace(info.data_config, input_size=64)
    _, hit4 = facts_module.cached_facts(samples, [], ["r", "g"], backbone, bigger, tmp_path / "c")
    assert (hit3, hit4) == (False, False) and len(calls) == 3  # another train list, another data config


@pytest.fixture
def planted(tmp_path):
    """train/val/test of distinct pictures; two train files copied into test (one byte for byte, one resized and
    re-encoded) and one into val."""
    root = tmp_path / "planted"
    seeds = iter(range(1000))
    for split, n in (("train", 8), ("val", 4), ("test", 4)):
        for c in ("a", "b"):
            (root / split / c).mkdir(parents=True)
            for i in range(n):
                smooth_photo(next(seeds)).save(root / split / c / f"{c}{i}.png")
    shutil.copyfile(root / "train" / "a" / "a3.png", root / "test" / "a" / "copy.png")
    Image.open(root / "train" / "b" / "b5.png").convert("RGB").resize((58, 58)).save(
        root / "test" / "b" / "smaller.jpg", quality=70)
    shutil.copyfile(root / "train" / "b" / "b1.png", root / "val" / "b" / "copy.png")
    return root


def test_figures_without_the_images_copied_from_train(planted, tmp_path):
    splits = load_splits(planted)
    report = check_leakage(splits, tmp_path / "cache")
    assert {k: sorted(p.rsplit("/", 1)[-1] for p in v) for k, v in report.copied_from_train.items()} == {
        "val": ["copy.png"], "test": ["copy.png", "smaller.jpg"]}
    # a model right on every copy and on half of the other test images
    test = splits.test
    copied = set(report.copied_from_train["test"])
    probs = np.zeros((len(test), 2))
    others = 0
    for i, s in enumerate(test):
        right = str(s.path) in copied or (others := others + 1) % 2 == 0
        probs[i, s.label if right else 1 - s.label] = 1.0
    val_probs = np.eye(2)[[s.label for s in splits.val]]
    figures = figures_without_copies({"test": (test, probs), "val": (splits.val, val_probs)},
                                     report.copied_from_train)
    assert figures["test"]["copies"] == 2 and figures["test"]["all"]["n"] == 10
    assert figures["test"]["without_copies"] == {"n": 8, "accuracy": 0.5, "balanced_accuracy": 0.5}
    assert figures["test"]["all"]["accuracy"] == 0.6
    assert figures["val"]["without_copies"]["n"] == 8 and figures["val"]["copies"] == 1
    assert json.loads(json.dumps(report.to_dict()))["copied_from_train"] == report.copied_from_train

    metrics = {"leakage": {**report.to_dict(), "without_copies": figures},
               "test": {"accuracy": 0.6, "n": 10}, "val": {"accuracy": 1.0, "n": 9}}
    summary = findings_summary({"test": {"accuracy": 0.6, "n": 10}}, metrics)
    assert summary["test"]["accuracy_without_copies"] == 0.5 and summary["test"]["n_without_copies"] == 8
    assert summary["leakage"]["warning"].startswith("LEAKAGE ACROSS SPLITS") and summary["leakage"]["exact"] == 2
    (row,) = [r for r in copy_free_rows(metrics) if r["split"].startswith("test")]
    assert row["split"] == "test without copies" and row["n"] == 8 and row["accuracy"] == 0.5
    lines = findings_lines(metrics)
    assert lines[0].startswith("LEAKAGE ACROSS SPLITS")
    assert any(line.startswith("test: accuracy 0.600") and "0.500 (balanced 0.500) on the 8 without a copy" in line
               for line in lines)


def test_recipe_and_advice_reach_summary_and_report_text():
    recipe = choose_recipe(_facts(bn_shift=0.31), {**NONE, "lr": 3e-3}, 224).to_dict()
    metrics = {"data_findings": {"recipe": recipe, "recipe_applied": True, "advice": None}}
    summary = findings_summary({}, metrics)
    assert summary["recipe"] == {"name": "train-bn", "chosen_by": "far from ImageNet: BatchNorm input shift 0.310 "
                                 "vs 0.22", "replaced_by_you": {"lr": 3e-3}}
    (line,) = findings_lines(metrics)
    assert "trained-BatchNorm recipe" in line and "shift 0.310" in line and "replaced the recipe's lr" in line
    advice = {"rule": "grey images", "fact": "grey share 1.00 vs 0.9", "command": "tlearn fit d --strategy auto "
              "--budget-minutes 15 --out r-auto", "expected_minutes": 15, "text": "grey images: try it"}
    probe = {"data_findings": {"recipe": recipe, "recipe_applied": False, "advice": advice}}
    assert findings_summary({}, probe) == {"advice": {"rule": "grey images", "fact": "grey share 1.00 vs 0.9",
                                                      "try": advice["command"], "expected_minutes": 15}}
    assert findings_lines(probe) == ["grey images: try it"]
    assert findings_summary({}, {}) == {} and findings_lines({}) == []


def test_a_probe_fit_says_what_fired_and_finetune_uses_the_recipe(tmp_path):
    """End to end on 36 px images (small for a 224 px backbone): the probe advises auto, finetune picks the
    small-image recipe at 64 px, and both say so in metrics, config and report."""
    from tlearn import fit

    root = write_class_tree(tmp_path / "tiny", {"r": 6, "g": 6}, size=36)
    fast = dict(backbone="efficientnet_lite0", progress=False, num_workers=0, cache_dir=str(tmp_path / "c"))
    probe = fit(root, tmp_path / "probe", **fast)
    found = probe.metrics["data_findings"]
    assert found["advice"]["rule"] == "small images" and "--strategy auto --budget-minutes" in found["advice"][
        "command"]
    assert probe.config["data_findings"]["recipe"]["name"] == "small-images"
    assert "small images" in (probe.path / "report.html").read_text()
    ft = fit(root, tmp_path / "ft", strategy="finetune", epochs=1, train_batch_size=4, **fast)
    recipe = ft.config["strategy"]["recipe"]
    assert recipe["name"] == "small-images" and recipe["overridden_by_user"] == {"epochs": 1}
    assert ft.config["backbone"]["data_config"]["input_size"] == 64 and ft.config["fit"]["freeze_bn"] is False
    assert ft.metrics["data_findings"]["facts_cached"] is True  # measured by the probe run
    assert "small-image recipe" in (ft.path / "report.html").read_text()


def test_facts_read_back_are_checked_field_by_field():
    from tlearn.features.facts import DataFacts

    good = dict(n_train=10, n_val=2, n_classes=2, class_counts=[5, 5], min_per_class=5, median_per_class=5.0,
                imbalance=1.0, median_short_side=None, grey_fraction=0.5, bn_shift=0.2,
                decode_seconds_per_image=0.01, sampled=10, seconds=1.0)
    assert DataFacts.from_dict(good).grey_fraction == 0.5
    for bad in ({**good, "grey_fraction": "abc"}, {**good, "n_train": -1}, {**good, "bn_shift": float("nan")},
                {k: v for k, v in good.items() if k != "seconds"}, {**good, "class_counts": [5, "x"]}):
        with pytest.raises(ValueError, match="data facts"):
            DataFacts.from_dict(bad)
