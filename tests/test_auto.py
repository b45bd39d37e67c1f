"""--strategy auto: halving arithmetic, rules from data facts, and tiny end-to-end searches (32 px, a budget of
seconds) that check the run directory, the val-only choice, the budget and resuming after an interruption."""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

import tlearn
from conftest import write_class_tree
from tlearn.data.layout import Sample
from tlearn.auto import halving, runner
from tlearn.auto.facts import DataFacts, measure_facts
from tlearn.auto.portfolio import default_portfolio
from tlearn.auto.rules import apply_rules, small_image_size
from tlearn.auto.search import choose_winner
from tlearn.errors import TlearnError
from tlearn.train.selection import kept_row

FAST = dict(image_size=32, train_batch_size=8, num_workers=0, progress=False, seed=1)
STATUSES = {"finished", "stopped", "not run"}


def _facts(**over) -> DataFacts:
    base = dict(n_train=1000, n_val=200, n_classes=4, class_counts=[250] * 4, min_per_class=250,
                median_per_class=250.0, imbalance=1.0, median_short_side=300.0, grey_fraction=0.0, bn_shift=0.15,
                decode_seconds_per_image=0.005, sampled=48, seconds=1.0)
    return DataFacts(**{**base, **over})


def _rules(facts: DataFacts, **kw):
    cands, records = apply_rules(default_portfolio(), facts, 224, user_image_size=kw.get("size"),
                                 user_balancing=kw.get("balancing", False))
    return [c.name for c in cands], {r.name: r for r in records}, cands


# ---- halving ---------------------------------------------------------------------------------------------------

def test_rungs_grow_to_the_whole_schedule_and_keep_the_better_half():
    assert [halving.rung_count(n) for n in (1, 2, 3, 4, 5)] == [1, 2, 3, 3, 4]
    assert halving.rung_targets(8, 0, 3) == [2, 4, 8]
    assert halving.rung_targets(9, 1, 3) == [3, 5, 9]  # head epoch + at least one epoch of the whole network
    assert halving.rung_targets(2, 1, 3) == [2, 2, 2]  # never past the schedule
    assert [halving.keep_count(n) for n in (1, 2, 3, 4, 5)] == [1, 1, 2, 2, 3]


def test_halving_cost_assumes_the_expensive_candidates_survive():
    items = [halving.Costing("a", 8, 0, 10.0, 5.0), halving.Costing("b", 8, 0, 1.0, 0.0)]
    # rung 1: both to 4 epochs (+ a's start); rung 2: the dearer one (a) from 4 to 8
    assert halving.halving_cost(items) == pytest.approx(5 + 40 + 4 + 40)


def test_choose_keeps_priority_order_lengthens_when_everything_fits_and_shortens_one_alone():
    cost = {"a": 10.0, "b": 10.0, "c": 1000.0}
    items_at = lambda names, scale: [halving.Costing(n, halving.scaled_epochs(8, scale), 0, cost[n], 0.0)  # noqa: E731
                                     for n in names]
    chosen, scale, left_out = halving.choose(items_at, ["a", "c", "b"], 200.0)
    assert chosen == ["a", "b"] and scale == 1.0 and "c" in left_out and left_out["c"].startswith("not run")
    assert halving.choose(items_at, ["a", "b"], 10_000.0)[1] == 2.0  # time for twice the schedule
    chosen, scale, _ = halving.choose(items_at, ["c", "a"], 55.0)
    assert chosen == ["a"] and scale == 5 / 8  # a alone, with the 5 epochs that fit (50 s)
    assert halving.choose(items_at, ["c", "a"], 15.0)[0] == []  # under 2 epochs: not worth starting
    assert halving.choose(items_at, ["c"], 5.0)[0] == []  # nothing fits: the probe is the result


# ---- rules -----------------------------------------------------------------------------------------------------

def test_no_rule_fires_on_natural_photos_and_the_portfolio_keeps_its_order():
    names, records, _ = _rules(_facts())
    assert names == ["probe", "ft-frozen-bn", "ft-train-bn", "ft-train-bn-lr3e-4", "ft-frozen-bn-lr5e-3"]
    assert not any(r.fired for r in records.values())
    assert all(r.fact for r in records.values())


def test_tiny_images_add_a_probe_and_the_small_image_recipe_at_64_px_first():
    names, records, cands = _rules(_facts(median_short_side=32.0))
    assert records["small images"].fired and "32 px" in records["small images"].fact
    assert names[:3] == ["probe", "probe-64", "small-64"]
    small = next(c for c in cands if c.name == "small-64")
    assert small.settings["image_size"] == 64 and small.settings["freeze_bn"] is False
    assert small.settings["augment"] == "crop" and small.total_epochs == 31
    assert small_image_size(28, 224) == 64 and small_image_size(64, 224) == 96
    names, records, _ = _rules(_facts(median_short_side=32.0), size=32)  # the user chose the size
    assert not records["small images"].fired and "--image-size 32" in records["small images"].effect
    assert "small-64" not in names


def test_grey_and_far_domains_move_trained_batchnorm_first_and_imbalance_adds_class_weights():
    names, records, cands = _rules(_facts(grey_fraction=1.0))
    assert records["grey images"].fired and names[1] == "ft-train-bn"
    assert any("grey images" in r for r in cands[1].reasons)
    names, records, _ = _rules(_facts(bn_shift=0.35))
    assert records["far from ImageNet"].fired and names[1] == "ft-train-bn"
    names, records, cands = _rules(_facts(imbalance=3.0, class_counts=[300, 100]))
    assert records["class imbalance"].fired and names[2] == "ft-frozen-bn-cw"
    assert cands[2].settings["class_weights"] == "auto"
    names, records, _ = _rules(_facts(imbalance=3.0), balancing=True)
    assert not records["class imbalance"].fired and "ft-frozen-bn-cw" not in names
    names, records, _ = _rules(_facts(median_per_class=12.0, grey_fraction=1.0))
    assert records["few images per class"].fired and names[1] == "ft-frozen-bn"


def test_facts_see_grey_and_tiny_images(tmp_path):
    root = tmp_path / "grey"
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        (root / name).mkdir(parents=True)
        for i in range(6):
            Image.fromarray(rng.integers(0, 255, (20, 24), dtype=np.uint8), mode="L").convert("RGB").save(
                root / name / f"{i}.png")
    samples = [Sample(p, int(p.parent.name == "b")) for p in sorted(root.rglob("*.png"))]
    backbone, info = tlearn.load_backbone("efficientnet_lite0")
    facts = measure_facts(samples, samples[:2], ["a", "b"], backbone, info.data_config.with_size(64))
    assert facts.grey_fraction == 1.0 and facts.median_short_side == 20.0 and facts.bn_shift > 0
    assert facts.class_counts == [6, 6] and facts.imbalance == 1.0
    colour = write_class_tree(tmp_path / "colour", {"r": 4, "g": 4}, size=36)
    samples = [Sample(p, int(p.parent.name == "g")) for p in sorted(colour.rglob("*.png"))]
    assert measure_facts(samples, [], ["r", "g"], backbone, info.data_config.with_size(64)).grey_fraction == 0.0


def test_recipe_options_are_refused_with_auto_and_the_budget_only_with_auto(tmp_path):
    data = write_class_tree(tmp_path / "d", {"a": 6, "b": 6}, size=32)
    with pytest.raises(TlearnError, match="--lr"):
        tlearn.fit(data, tmp_path / "r1", strategy="auto", lr=1e-3, **FAST)
    with pytest.raises(TlearnError, match="--budget-minutes is for --strategy auto"):
        tlearn.fit(data, tmp_path / "r2", strategy="finetune", budget_minutes=1, **FAST)
    with pytest.raises(TlearnError, match="positive"):
        tlearn.fit(data, tmp_path / "r3", strategy="auto", budget_minutes=0, **FAST)


# ---- end to end ------------------------------------------------------------------------------------------------

def _data(root: Path) -> Path:
    for split, n in (("train", 12), ("val", 4), ("test", 4)):
        write_class_tree(root / split, {"red": n, "green": n, "blue": n}, size=36, seed=len(split))
    return root


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return _data(tmp_path_factory.mktemp("auto") / "colours")


def _keys_named(key: str, obj) -> bool:
    if isinstance(obj, dict):
        return key in obj or any(_keys_named(key, v) for v in obj.values())
    return isinstance(obj, list) and any(_keys_named(key, v) for v in obj)


class Spy:
    """Records what the search hands the training loop and the probe's val scoring."""

    def __init__(self, monkeypatch, fail_on: str | None = None):
        self.calls: list[tuple[str, bool]] = []  # (candidate, resumed)
        self.paths: set[str] = set()
        self.probes = 0
        real_train, real_predict, real_probe = runner.train, runner.predict_samples, runner.run_probe

        def train(model, phases, train_samples, val_samples, data_config, options, **kw):
            name = Path(options.checkpoint_dir).parent.name
            self.calls.append((name, options.resume))
            self.paths.update(str(s.path) for s in [*train_samples, *val_samples])
            if name == fail_on:
                raise KeyboardInterrupt
            return real_train(model, phases, train_samples, val_samples, data_config, options, **kw)

        def predict(model, samples, *a, **kw):
            self.paths.update(str(s.path) for s in samples)
            return real_predict(model, samples, *a, **kw)

        def probe(ctx):
            self.probes += 1
            return real_probe(ctx)

        monkeypatch.setattr(runner, "train", train)
        monkeypatch.setattr(runner, "predict_samples", predict)
        monkeypatch.setattr("tlearn.auto.search.run_probe", probe)


def test_auto_search_writes_a_complete_run_chosen_on_val_within_its_budget(data, tmp_path, monkeypatch):
    spy = Spy(monkeypatch)
    budget = 0.9
    t0 = time.perf_counter()
    run = tlearn.fit(data, tmp_path / "run", strategy="auto", budget_minutes=budget, **FAST)
    wall = time.perf_counter() - t0
    assert wall <= 60 * budget * 1.1, f"{wall:.1f}s for a {budget} min budget"

    out = tmp_path / "run"
    for name in ("config.yaml", "classes.json", "metrics.json", "history.csv", "model.safetensors", "report.html",
                 "predictions/val.csv", "predictions/test.csv"):
        assert (out / name).is_file(), name
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["fit"]["strategy"] == "auto" and config["fit"]["budget_minutes"] == budget
    auto = config["strategy"]
    state = json.loads((out / "search" / "search.json").read_text())
    table = auto["search"]
    assert [r["name"] for r in table] == [c["name"] for c in state["candidates"]]
    assert table[0]["name"] == "probe" and table[0]["status"] == "finished"
    assert {r["status"] for r in table} <= STATUSES and all(r["why"] for r in table)
    assert any(r["epochs_done"] > 1 for r in table)  # fine-tuning trained (how many depends on the machine)
    scored = [r for r in table if r["val_accuracy"] is not None]
    assert auto["winner"] == choose_winner(scored, 12)[0]["name"]  # 12 val images
    assert auto["selection"].startswith(auto["winner"])
    assert {r["rule"] for r in auto["rules"]} >= {"small images", "grey images", "far from ImageNet"}
    assert auto["winner_fit"]["strategy"] in ("linear-probe", "finetune")
    assert auto["budget"]["search_seconds"] <= 60 * budget

    # test is evaluated once, for the winner: no candidate saw a test image, and nothing in search/ holds test
    test_paths = {str(p.resolve()) for p in (data / "test").rglob("*.png")}
    assert spy.paths and not (spy.paths & test_paths)
    assert not _keys_named("test", state["candidates"])
    assert not list((out / "search").rglob("test.csv"))
    assert not list((out / "search").rglob("epoch-*"))  # optimizer states go once the search is over
    trained = [r["name"] for r in table if r["epochs_done"] and r["name"] != "probe"]
    assert all((out / "search" / n / "checkpoints" / "best.safetensors").is_file() for n in trained)
    metrics = run.metrics
    assert metrics["test"]["n"] == 12 and metrics["val"]["n"] == 12
    assert "Search" in (html := (out / "report.html").read_text()) and "one-standard-error rule" in html

    loaded = tlearn.load_run(out)
    predictions, skipped = loaded.predict(data / "test" / "red")
    assert len(predictions) == 4 and not skipped
    assert {p.label for p in predictions} <= set(loaded.classes)


def test_a_budget_too_small_for_fine_tuning_leaves_the_probe_as_the_run(data, tmp_path):
    t0 = time.perf_counter()  # 18 s: less than the >= 18.75 s kept back for the final evaluation
    run = tlearn.fit(data, tmp_path / "run", strategy="auto", budget_minutes=0.3, **FAST)
    assert time.perf_counter() - t0 <= 0.3 * 60 * 1.1
    auto = run.config["strategy"]
    assert auto["winner"] == "probe" and run.config["fit"]["strategy"] == "auto"
    assert all(r["status"] == "not run" and r["why"].startswith("not run") for r in auto["search"][1:]), \
        [(r["name"], r["status"], r["why"]) for r in auto["search"]]
    assert "test" in run.metrics


def test_an_interrupted_search_continues_without_retraining_what_it_finished(data, tmp_path, monkeypatch):
    out = tmp_path / "run"
    with monkeypatch.context() as m:
        first = Spy(m, fail_on="ft-train-bn")  # the second fine-tune: killed as it starts
        with pytest.raises(KeyboardInterrupt):
            tlearn.fit(data, out, strategy="auto", budget_minutes=0.9, **FAST)
    assert first.probes == 1 and first.calls[0] == ("ft-frozen-bn", False)
    saved = json.loads((out / "search" / "search.json").read_text())
    done = {c["name"]: c for c in saved["candidates"]}
    assert done["probe"]["status"] == "finished" and done["ft-frozen-bn"]["epochs_done"] >= 1
    assert not (out / "metrics.json").exists()

    second = Spy(monkeypatch)
    run = tlearn.fit(data, out, strategy="auto", budget_minutes=0.9, **FAST)
    assert second.probes == 0  # the probe is not fitted again
    resumed = [resumed for name, resumed in second.calls if name == "ft-frozen-bn"]
    assert all(resumed)  # continued from its checkpoints, never from scratch
    state = json.loads((out / "search" / "search.json").read_text())
    assert state["sessions"] == 2 and state["spent_seconds"] > saved["spent_seconds"]
    by_name = {c["name"]: c for c in state["candidates"]}
    assert by_name["probe"]["val_accuracy"] == done["probe"]["val_accuracy"]
    frozen = by_name["ft-frozen-bn"]["history"]
    assert frozen[: done["ft-frozen-bn"]["epochs_done"]] == done["ft-frozen-bn"]["history"]
    assert run.config["strategy"]["budget"]["sessions"] == 2 and "test" in run.metrics


def test_one_se_keeps_the_latest_epoch_within_the_noise_and_the_first_candidate_within_it():
    history = [{"epoch": 1, "val_accuracy": 0.913, "val_loss": 0.3}, {"epoch": 2, "val_accuracy": 0.867},
               {"epoch": 3, "val_accuracy": 0.893}, {"epoch": 4, "val_accuracy": 0.880}]
    # SE of 0.913 on 150 images is 0.023: epoch 3 (0.893) is within it, epoch 4 (0.880) is not
    assert kept_row(history, "one-se", 150)["epoch"] == 3
    assert kept_row(history, "best", 150)["epoch"] == 1
    assert kept_row(history, "one-se", 100_000)["epoch"] == 1  # a huge val set: no noise, the best
    probe = {"name": "probe", "val_accuracy": 0.90, "val_loss": 0.3}
    tuned = {"name": "ft", "val_accuracy": 0.913, "val_loss": 0.2}
    assert choose_winner([probe, tuned], 150)[0] is probe
    assert choose_winner([probe, tuned], 10_000)[0] is tuned
    assert choose_winner([{**probe, "val_accuracy": 0.70}, tuned], 150)[0] is tuned

