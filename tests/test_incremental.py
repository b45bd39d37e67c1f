"""Incremental learning: the analytic head from streamed statistics is the one-shot head, whatever the order;
`tlearn extend` adds classes or images end to end; fine-tuned extensions keep exemplars by content hash."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from tlearn.errors import DataError, TlearnError
from tlearn.features.statistics import STATS_FILE, FeatureStatistics, space_for, to_space
from tlearn.incremental.analytic import HEADS, solve_head
from tlearn.strategies.linear_probe import FEATURE_TREATMENTS

TINY = dict(backbone="compact_cnn", weights="none", image_size=24, num_workers=0, progress=False)


def _blobs(seed: int = 0, k: int = 7, d: int = 24, n: int = 30):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, d))
    X = np.vstack([c + rng.normal(size=(n + i, d)) for i, c in enumerate(centres)]) * 4 + 2
    y = np.concatenate([[i] * (n + i) for i in range(k)])
    return X, y, [f"class{i}" for i in range(k)]


@pytest.mark.parametrize("treatment", FEATURE_TREATMENTS)
@pytest.mark.parametrize("head", HEADS)
def test_streamed_statistics_give_the_one_shot_head_for_any_order(treatment, head):
    X, y, classes = _blobs()
    space = space_for(treatment)
    one_shot = solve_head(FeatureStatistics.from_features(X, y, classes, space, treatment), head)
    rng = np.random.default_rng(1)
    for _ in range(3):  # random chunks of images, each chunk arriving with its classes in a random order
        order = rng.permutation(len(y))
        total = None
        for chunk in np.array_split(order, rng.integers(2, 6)):
            names = [classes[i] for i in rng.permutation(len(classes))]
            local = np.array([names.index(classes[j]) for j in y[chunk]])
            part = FeatureStatistics.from_features(X[chunk], local, names, space, treatment)
            total = part if total is None else total + part
        streamed = solve_head(total, head)
        index = [total.classes.index(c) for c in classes]  # the streamed head's rows in the one-shot order
        scale = np.abs(one_shot.weight).max()
        np.testing.assert_allclose(streamed.weight[index], one_shot.weight, atol=1e-5 * scale, rtol=0)
        np.testing.assert_allclose(streamed.bias[index], one_shot.bias, atol=1e-5 * max(np.abs(one_shot.bias).max(), 1))
    logits = one_shot.logits(to_space(X, space))
    assert (logits.argmax(1) == y).mean() > 0.9  # and it is a classifier worth having


def test_class_by_class_arrival_equals_one_shot_and_statistics_survive_the_file(tmp_path):
    X, y, classes = _blobs(seed=2)
    full = FeatureStatistics.from_features(X, y, classes, "features", "standardized")
    total = None
    for k in [3, 0, 6, 1, 5, 2, 4]:  # one class per step, as `tlearn extend` adds them
        part = FeatureStatistics.from_features(X[y == k], np.zeros((y == k).sum(), int), [classes[k]], "features",
                                               "standardized")
        total = part if total is None else total + part
    total.save(tmp_path / STATS_FILE)
    loaded = FeatureStatistics.load(tmp_path / STATS_FILE).with_classes(classes)
    np.testing.assert_array_equal(loaded.counts, full.counts)
    np.testing.assert_allclose(loaded.gram, full.gram, rtol=1e-12)
    a, b = solve_head(full), solve_head(loaded)
    np.testing.assert_allclose(a.weight, b.weight, atol=1e-5 * np.abs(a.weight).max())
    (tmp_path / "bad.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(TlearnError, match="bad.safetensors"):
        FeatureStatistics.load(tmp_path / "bad.safetensors")


COLOURS = {"red": (1, -1, -1), "green": (-1, 1, -1), "blue": (-1, -1, 1), "cyan": (-1, 1, 1), "plum": (1, -1, 1)}


def noisy_tree(root: Path, counts: dict[str, int], seed: int) -> Path:
    """Colour classes close together under per-image colour noise: a few images per class leave room to improve."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for name, n in counts.items():
        (root / name).mkdir(parents=True)
        for i in range(n):
            base = 128 + 22 * np.array(COLOURS[name]) + rng.normal(0, 22, 3)
            pixels = np.clip(base + rng.normal(0, 30, (24, 24, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / name / f"{name}_{seed}_{i}.png")
    return root


@pytest.fixture(scope="module")
def colours(tmp_path_factory) -> Path:
    """old: three classes, 5 train images each; new: two new classes; more: more images of the old ones;
    test/ everywhere (the same old-class test images in old/ and more/)."""
    root = tmp_path_factory.mktemp("incremental")
    old = {"red": 5, "green": 5, "blue": 5}
    noisy_tree(root / "old" / "train", old, 0)
    noisy_tree(root / "old" / "test", {c: 20 for c in old}, 1)
    noisy_tree(root / "new" / "train", {"cyan": 10, "plum": 10}, 2)
    noisy_tree(root / "new" / "test", {"cyan": 10, "plum": 10}, 3)
    noisy_tree(root / "more" / "train", {c: 25 for c in old}, 4)
    shutil.copytree(root / "old" / "test", root / "more" / "test")
    return root


@pytest.fixture(scope="module")
def probe_run(colours, tmp_path_factory) -> Path:
    from tlearn import fit

    out = tmp_path_factory.mktemp("runs") / "old"
    fit(colours / "old", out, **TINY)
    return out


def _tlearn(capsys, *args: str) -> dict:
    """The command line in this process (a subprocess would spend seconds importing torch again)."""
    from tlearn.cli import main

    assert main([*args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_extend_with_new_classes_through_the_cli_is_exact_and_a_normal_run(colours, probe_run, tmp_path, capsys):
    from tlearn.data.layout import load_splits
    from tlearn.features.extract import extract_features
    from tlearn.runs.run import Run

    out = tmp_path / "extended"
    printed = _tlearn(capsys, "extend", str(probe_run), str(colours / "new"), "--out", str(out), "--no-progress")
    assert printed["added"] == ["cyan", "plum"] and printed["method"] == "analytic" and printed["classes"] == 5
    run = Run(out)
    assert run.classes == ["blue", "green", "red", "cyan", "plum"]  # old classes first, then the new ones
    config, metrics = run.config, run.metrics
    assert config["strategy"]["name"] == "analytic" and config["extend"]["parent"] == str(probe_run)
    assert [s["classes_added"] for s in config["lineage"]] == [["blue", "green", "red"], ["cyan", "plum"]]
    assert [s["step"] for s in metrics["lineage"]] == [0, 1]
    assert metrics["test"]["n"] == 80 and metrics["test"]["accuracy"] > 0.5  # old and new classes' test images

    # the head equals the one solved on every train image at once (with the parent's feature treatment)
    treatment = Run(probe_run).config["strategy"]["features"]
    samples, labels = [], []
    for part in ("old", "new"):
        train = load_splits(colours / part, min_classes=1).train  # the same holdout as fit and extend made
        samples += train
        labels += [run.classes.index(load_splits(colours / part).classes[s.label]) for s in train]
    fs = extract_features(run.model.backbone, samples, run.data_config, progress=False, num_workers=0)
    assert len(fs.samples) == len(samples)
    head = solve_head(FeatureStatistics.from_features(fs.features, np.array(labels), run.classes,
                                                      space_for(treatment), treatment))
    w = run.model.head.weight.detach().double().numpy()
    np.testing.assert_allclose(w, head.weight, atol=1e-4 * np.abs(head.weight).max())

    predictions, _ = run.predict(colours / "new" / "test" / "plum")
    assert len(predictions) == 10 and set(predictions[0].probabilities) == set(run.classes)
    assert run.evaluate(colours / "old" / "test", progress=False)["n"] == 60
    from tlearn.export.exporter import export_run

    exported = export_run(out, "onnx", tmp_path / "extended.onnx")  # parity checked on the lineage's val images
    assert exported.parity["n"] == run.metrics["val"]["n"] == 7 and exported.parity["top1_agreement"] == 1.0


def test_more_images_of_known_classes_keep_or_improve_accuracy(colours, probe_run, tmp_path):
    from tlearn.incremental import extend
    from tlearn.runs.run import Run

    before = Run(probe_run).metrics["test"]["accuracy"]
    run = extend(probe_run, colours / "more", tmp_path / "more", progress=False)
    assert run.classes == Run(probe_run).classes and run.config["lineage"][-1]["classes_added"] == []
    assert run.config["lineage"][-1]["images_added"] == {"blue": 20, "green": 20, "red": 20}  # 20% held out: val
    assert run.metrics["test"]["n"] == 60  # the same test images, counted once
    assert run.metrics["test"]["accuracy"] >= before, (before, run.metrics["test"]["accuracy"])


def test_clear_errors(colours, probe_run, tmp_path):
    from tlearn.incremental import extend

    clash = tmp_path / "clash"
    shutil.copytree(colours / "new" / "train" / "cyan", clash / "Red ")
    with pytest.raises(DataError, match="'Red ' .* 'red'"):
        extend(probe_run, clash, tmp_path / "x", progress=False)
    with pytest.raises(TlearnError, match="never overwritten"):
        extend(probe_run, colours / "new", probe_run, progress=False)

    old_style = tmp_path / "old-style"
    shutil.copytree(probe_run, old_style)
    (old_style / STATS_FILE).unlink()
    with pytest.raises(TlearnError, match=f"{STATS_FILE} is missing.*Fit it again"):
        extend(old_style, colours / "new", tmp_path / "y", progress=False)

    finetuned = tmp_path / "finetuned"
    shutil.copytree(probe_run, finetuned)
    config = yaml.safe_load((finetuned / "config.yaml").read_text())
    config["strategy"]["name"] = "finetune"
    (finetuned / "config.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(TlearnError, match="'finetune'.*--method lwf"):
        extend(finetuned, colours / "new", tmp_path / "z", method="analytic", progress=False)



def test_extend_with_images_the_run_already_holds_warns_and_strict_refuses(colours, probe_run, tmp_path, caplog):
    from tlearn.incremental import extend

    again = tmp_path / "again"
    shutil.copytree(colours / "new", again)
    for split in ("train", "test"):  # the run was fit on old/train's red images (and tested on old/test's)
        shutil.copytree(colours / "old" / split / "red", again / split / "red")
    with pytest.raises(DataError, match=r"[1-5] of the \d+ train images .* already held by the run .*\(\d in its "
                                        r"train data.*by content.*count twice"):
        extend(probe_run, again, tmp_path / "strict", strict=True, progress=False)
    assert not (tmp_path / "strict" / "config.yaml").exists()
    with caplog.at_level("WARNING", logger="tlearn"):
        run = extend(probe_run, again, tmp_path / "warned", progress=False)
    assert any("already held by the run" in r.getMessage() and "count twice" in r.getMessage()
               for r in caplog.records)
    assert run.config["extend"]["strict"] is False
    caplog.clear()
    with caplog.at_level("WARNING", logger="tlearn"):
        extend(probe_run, colours / "new", tmp_path / "clean", strict=True, progress=False)  # nothing repeats
    assert not any("already held" in r.getMessage() for r in caplog.records)

def test_lwf_with_replay_records_exemplars_and_refuses_a_changed_one(colours, probe_run, tmp_path):
    from tlearn.incremental import extend

    run = extend(probe_run, colours / "new", tmp_path / "ft2", method="lwf", replay=2, epochs=1, progress=False)
    assert run.config["strategy"]["name"] == "lwf" and run.config["strategy"]["replayed_images"] == 6
    assert run.config["strategy"]["sampler"] == "balanced"  # the few exemplars drawn as often as the new images
    assert run.config["strategy"]["l2_sp_to_parent"] == 0.1  # the parent had the default pull
    exemplars = json.loads((tmp_path / "ft2" / "exemplars.json").read_text())["exemplars"]
    assert sorted({e["class"] for e in exemplars}) == ["blue", "cyan", "green", "plum", "red"]
    assert all(len(e["sha256"]) == 64 for e in exemplars) and len(exemplars) == 10
    assert run.metrics["test"]["n"] == 80

    changed = Path(exemplars[0]["path"])
    saved = changed.read_bytes()
    try:
        changed.write_bytes(saved + b"\0")
        with pytest.raises(TlearnError, match=f"exemplar {changed}.*changed"):
            extend(tmp_path / "ft2", colours / "more", tmp_path / "ft4", replay=2, epochs=1, progress=False)
    finally:
        changed.write_bytes(saved)


def test_a_fine_tuned_extension_keeps_its_parents_recipe(colours, probe_run, tmp_path):
    from tlearn.incremental import extend
    from tlearn.incremental.protocol import RECIPES
    from tlearn.strategies.recipes import FINETUNE_RECIPES

    assert set(RECIPES) == set(FINETUNE_RECIPES) | {"auto"}  # auto: the recipe the data's facts choose
    parent = tmp_path / "adamw-parent"
    shutil.copytree(probe_run, parent)
    config = yaml.safe_load((parent / "config.yaml").read_text())
    config["fit"].update(optimizer="adamw", lr=3e-3, freeze_bn=False, l2_sp=0.0)
    (parent / "config.yaml").write_text(yaml.safe_dump(config))
    run = extend(parent, colours / "new", tmp_path / "child", method="lwf", epochs=1, progress=False)
    assert run.config["strategy"]["lr"] == 3e-3  # not the finetune strategy's SGD rate under AdamW
    assert run.config["strategy"]["l2_sp_to_parent"] == 0.0  # the recipe had no pull, so LwF has none
    assert run.config["fit"]["optimizer"] == "adamw" and run.config["fit"]["freeze_bn"] is False


def test_class_tasks_are_a_seeded_partition_of_near_equal_sizes():
    from tlearn.incremental.protocol import class_tasks

    signs = [f"sign{i:02d}" for i in range(43)]
    tasks = class_tasks(signs, 4, 0)
    assert [len(t) for t in tasks] == [11, 11, 11, 10] and sorted(sum(tasks, [])) == signs
    assert class_tasks(signs, 4, 0) == tasks and class_tasks(signs, 4, 1) != tasks
    assert [len(t) for t in class_tasks(["a", "b", "c", "d", "e"], 2, 0)] == [3, 2]
    with pytest.raises(TlearnError, match="--tasks 5 .* at most 4 tasks"):
        class_tasks(["a", "b", "c", "d", "e"], 5, 0)


def test_incremental_protocol_writes_the_matrix_and_the_report(colours, tmp_path, capsys):
    study = tmp_path / "study"
    printed = _tlearn(capsys, "incremental", str(colours / "old"), "--tasks", "2", "--methods", "analytic,joint",
                      "--out", str(study), "--backbone", "compact_cnn", "--weights", "none", "--image-size", "24",
                      "--num-workers", "0", "--no-progress")
    result = json.loads((study / "incremental.json").read_text())
    assert sorted(result["class_order"]) == ["blue", "green", "red"] and [len(t) for t in result["tasks"]] == [2, 1]
    assert result["split"] == "test" and set(result["results"]) == {"analytic", "joint"}
    analytic = result["results"]["analytic"][0]
    assert analytic["matrix"][0][1] is None and len(analytic["matrix"]) == 2  # nothing measured before it is learned
    assert analytic["final_accuracy"] == analytic["seen_accuracy"][-1]
    assert printed["summary"]["analytic"]["vs_joint"] == "joint"
    html = (study / "incremental.html").read_text()
    assert 'id="summary"' in html and html.count("data:image/png;base64,") == 2
    # the same folder with other settings is refused
    with pytest.raises(TlearnError, match="class_order_seed.* differ"):
        from tlearn.incremental.protocol import IncrementalConfig, run_incremental

        run_incremental(IncrementalConfig(data=str(colours / "old"), out=str(study), tasks=2, methods="analytic",
                                          class_order_seed=5))


def _edited_stats(path: Path, **tensors) -> None:
    """The statistics file at PATH rewritten with some of its tensors replaced (its metadata kept)."""
    from safetensors import safe_open
    from safetensors.numpy import save_file

    with safe_open(str(path), framework="numpy") as f:
        meta, stored = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}
    save_file({**stored, **tensors}, str(path), metadata=meta)


@pytest.mark.parametrize("edit, problem", [
    ("nan_gram", "gram hold NaN"), ("negative_count", "counts are not whole numbers"),
    ("short_sums", "shapes"), ("huge_dim", "shapes")])
def test_edited_head_statistics_are_refused_naming_the_file(tmp_path, edit, problem):
    X, y, _ = _blobs(k=3, d=5)
    path = tmp_path / STATS_FILE
    FeatureStatistics.from_features(X, y, ["a", "b", "c"], "features", "standardized").save(path)
    good = FeatureStatistics.load(path)
    if edit == "nan_gram":
        upper = good.gram[np.triu_indices(5)].copy()
        upper[3] = np.nan
        _edited_stats(path, gram_upper=upper)
    elif edit == "negative_count":
        _edited_stats(path, counts=good.counts * np.array([1, -1, 1]))
    elif edit == "short_sums":
        _edited_stats(path, sums=good.sums[:, :4].copy())
    else:  # a dimension of 10**9 in the metadata: refused before a (d, d) matrix is allocated
        from safetensors.numpy import save_file

        save_file({"counts": good.counts, "sums": good.sums, "gram_upper": good.gram[np.triu_indices(5)]},
                  str(path), metadata={"format": "1", "space": "features", "treatment": "standardized",
                                       "classes": json.dumps(good.classes), "dim": str(10**9)})
    with pytest.raises(TlearnError, match=rf"{STATS_FILE} is inconsistent \({problem}"):
        FeatureStatistics.load(path)


def test_extend_of_a_run_with_edited_statistics_fails_before_writing_out(colours, probe_run, tmp_path, capsys):
    from tlearn.cli import main

    parent = tmp_path / "parent"
    shutil.copytree(probe_run, parent)
    stats = FeatureStatistics.load(parent / STATS_FILE)
    upper = stats.gram[np.triu_indices(stats.dim)].copy()
    upper[0] = np.nan
    _edited_stats(parent / STATS_FILE, gram_upper=upper)
    out = tmp_path / "extended"
    assert main(["extend", str(parent), str(colours / "new"), "--out", str(out), "--no-progress"]) != 0
    err = capsys.readouterr().err
    assert f"{parent / STATS_FILE} is inconsistent (gram hold NaN" in err and "Traceback" not in err
    assert not out.exists()
    # an existing finished run as OUT stays complete (with --overwrite too: nothing is cleared before the check)
    done = tmp_path / "done"
    shutil.copytree(probe_run, done)
    assert main(["extend", str(parent), str(colours / "new"), "--out", str(done), "--overwrite",
                 "--no-progress"]) != 0
    from tlearn.runs.run import Run

    assert Run(done).classes == ["blue", "green", "red"]
