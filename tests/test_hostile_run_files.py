"""Edited or damaged run files, read back: checkpoints (weights, state.json, the pointer, best and optimizer state),
the run's model, classes and config, and an extension's exemplars are each refused with a clear error that names
the file and what to do, before any of them is used; a finished run stays complete and usable afterwards."""
from __future__ import annotations

import csv
import json
import logging
import pickle
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file, save_file

from conftest import write_class_tree
from tlearn.errors import TlearnError
from tlearn.fitting import fit
from tlearn.runs import layout
from tlearn.runs.run import Run
from tlearn.runs.source import load_source
from tlearn.train.checkpoint import load_checkpoint, restore_optimizer, save_checkpoint

FAST = dict(backbone="compact_cnn", weights="none", image_size=24, num_workers=0, progress=False,
            train_batch_size=8, batch_size=16, augment="none")


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    for split, n, seed in (("train", 6, 0), ("val", 3, 1), ("test", 3, 2)):
        write_class_tree(root / split, {"red": n, "blue": n}, size=24, seed=seed)
    return root


@pytest.fixture(scope="module")
def finished(data, tmp_path_factory) -> Path:
    """A finished scratch run (2 epochs) with its checkpoints, copied by each test that edits it."""
    out = tmp_path_factory.mktemp("runs") / "scratch"
    fit(data, out, strategy="scratch", epochs=2, **FAST)
    return out


@pytest.fixture
def run(finished, tmp_path) -> Path:
    out = tmp_path / "run"
    shutil.copytree(finished, out)
    return out


def _resume(data: Path, out: Path):
    return fit(data, out, strategy="scratch", epochs=2, resume=True, **FAST)


def _still_usable(out: Path, data: Path) -> None:
    """The finished run is still complete and predicts (what a failed resume must never take away)."""
    assert layout.is_complete(out)
    predictions, skipped = Run(out).predict(data / "test" / "red")
    assert len(predictions) == 3 and not skipped


def _last_epoch(out: Path) -> Path:
    return out / "checkpoints" / json.loads((out / "checkpoints" / "last.json").read_text())["dir"]


def _edit_tensors(path: Path, edit) -> None:
    state = load_file(str(path))
    save_file(edit(state), str(path))


def _first_float(state: dict) -> str:
    return next(k for k, v in state.items() if v.is_floating_point() and v.dim() > 1)


def _wrong_shape(state):
    k = _first_float(state)
    return {**state, k: torch.zeros(*state[k].shape[:-1], state[k].shape[-1] + 1)}


def _nan(state):
    k = _first_float(state)
    bad = state[k].clone()
    bad.view(-1)[0] = float("nan")
    return {**state, k: bad}


def _integers(state):
    k = _first_float(state)
    return {**state, k: state[k].to(torch.int64)}


def _missing(state):
    return dict(list(state.items())[1:])


# ---- --resume of a run whose checkpoint was edited ------------------------------------------------------------

@pytest.mark.parametrize("edit, reason", [
    ("garbage", r"model\.safetensors is damaged or not a safetensors file"),
    ("pickle", r"model\.safetensors is damaged or not a safetensors file"),
    ("empty", r"model\.safetensors is damaged or not a safetensors file"),
    ("wrong_shape", r"model\.safetensors does not fit the model it is for \(shapes "),
    ("nan", r"model\.safetensors does not fit the model it is for \(NaN or infinite values in "),
    ("integers", r"model\.safetensors does not fit the model it is for \(number types "),
    ("missing", r"model\.safetensors does not fit the model it is for \(missing ")])
def test_resume_refuses_edited_checkpoint_weights_and_the_finished_run_stays_usable(data, run, edit, reason):
    weights = _last_epoch(run) / "model.safetensors"
    if edit == "garbage":
        weights.write_bytes(b"not a tensor file at all " * 40)
    elif edit == "pickle":
        weights.write_bytes(pickle.dumps({"weight": [1.0, 2.0]}))
    elif edit == "empty":
        weights.write_bytes(b"")
    else:
        _edit_tensors(weights, {"wrong_shape": _wrong_shape, "nan": _nan, "integers": _integers,
                                "missing": _missing}[edit])
    with pytest.raises(TlearnError, match=reason + r".*rerun without --resume"):
        _resume(data, run)
    _still_usable(run, data)


@pytest.mark.parametrize("edit, reason", [
    (lambda s: [s], "not a JSON object"),
    (lambda s: {**s, "epoch": "2"}, "epoch '2' is not a whole number"),
    (lambda s: {**s, "epoch": -1}, "epoch -1 is not a whole number"),
    (lambda s: {**s, "history": {"epoch": 1}}, "history is not a list"),
    (lambda s: {**s, "history": [{"epoch": [1]}]}, "history is not a list"),
    (lambda s: {**s, "best": None}, "best is not"),
    (lambda s: {**s, "bad_epochs": 1.5}, "bad_epochs 1.5"),
    (lambda s: {**s, "settings": []}, "settings is not"),
    (lambda s: {k: v for k, v in s.items() if k != "optimizer"}, "optimizer is not"),
    (lambda s: {**s, "optimizer": {**s["optimizer"], "param_groups": [{"params": ["x"]}]}}, "optimizer is not"),
    (lambda s: {**s, "format": 99}, "format 99")])
def test_resume_refuses_a_state_json_with_wrong_types(data, run, edit, reason):
    path = _last_epoch(run) / "state.json"
    path.write_text(json.dumps(edit(json.loads(path.read_text()))))
    with pytest.raises(TlearnError, match=rf"checkpoint state .*state\.json is not usable \({reason}"):
        _resume(data, run)
    _still_usable(run, data)


def test_resume_refuses_a_state_json_that_is_not_json_and_a_pointer_out_of_the_folder(data, run, tmp_path):
    state = _last_epoch(run) / "state.json"
    saved = state.read_text()
    state.write_bytes(b"\x80\x04garbage")
    with pytest.raises(TlearnError, match=r"state\.json is unreadable"):
        _resume(data, run)
    state.write_text(saved)
    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(_last_epoch(run), elsewhere)  # a checkpoint folder, marker and all, outside the run
    (run / "checkpoints" / "last.json").write_text(json.dumps({"dir": "../../elsewhere", "epoch": 2}))
    with pytest.raises(TlearnError, match=r"last\.json names '\.\./\.\./elsewhere', not an epoch-NNNN folder"):
        _resume(data, run)
    _still_usable(run, data)


def test_resume_refuses_edited_best_weights_naming_them(data, run):
    _edit_tensors(run / "checkpoints" / "best.safetensors", _nan)
    with pytest.raises(TlearnError, match=r"best\.safetensors does not fit the model it is for \(NaN"):
        _resume(data, run)
    _still_usable(run, data)


def test_a_refused_resume_through_the_cli_names_the_file_without_a_traceback(data, run, capsys):
    from tlearn.cli import main

    (_last_epoch(run) / "model.safetensors").write_bytes(pickle.dumps(object))
    code = main(["fit", str(data), "--out", str(run), "--strategy", "scratch", "--epochs", "2", "--backbone",
                 "compact_cnn", "--weights", "none", "--image-size", "24", "--no-progress", "--num-workers", "0",
                 "--train-batch-size", "8", "--augment", "none", "--resume"])
    err = capsys.readouterr().err
    assert code != 0 and "model.safetensors is damaged" in err and "Traceback" not in err
    _still_usable(run, data)
    assert main(["predict", str(run), str(data / "test" / "blue"), "--json"]) == 0


def test_an_intact_resume_of_a_finished_run_still_works(data, run):
    resumed = _resume(data, run)  # the checks pass what tlearn wrote itself
    assert layout.is_complete(run) and resumed.metrics["test"]["n"] == 6


# ---- the optimizer state of a checkpoint ----------------------------------------------------------------------

def test_an_optimizer_state_that_does_not_fit_the_parameters_is_refused(tmp_path):
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1)
    model(torch.ones(1, 3)).sum().backward()
    optimizer.step()
    folder = tmp_path / "ckpt"
    save_checkpoint(folder, 1, model.state_dict(), optimizer,
                    {"epoch": 1, "history": [], "best": {"epoch": 1, "val_accuracy": 0.5, "val_loss": 1.0},
                     "bad_epochs": 0, "settings": {}, "ema_steps": 0})
    path = folder / "epoch-0001" / "optimizer.safetensors"
    _edit_tensors(path, lambda s: {k: (torch.zeros(5, 5) if k.endswith("exp_avg") else v) for k, v in s.items()})
    _, state, _ = load_checkpoint(folder, model.state_dict())
    with pytest.raises(TlearnError, match=r"optimizer state of the checkpoint in .*exp_avg \(5, 5\) for a parameter"):
        restore_optimizer(torch.optim.AdamW(model.parameters(), lr=0.1), state, folder)
    _edit_tensors(path, _nan)
    with pytest.raises(TlearnError, match=r"optimizer\.safetensors holds NaN or infinite values"):
        load_checkpoint(folder, model.state_dict())


# ---- a finished run's own files -------------------------------------------------------------------------------

@pytest.mark.parametrize("edit, reason", [
    ("pickle", "is damaged or not a safetensors file"), ("wrong_shape", r"does not fit the model it is for \(shapes"),
    ("nan", r"does not fit the model it is for \(NaN")])
def test_an_edited_run_model_is_refused_by_every_reader(data, run, edit, reason):
    weights = run / layout.MODEL
    if edit == "pickle":
        weights.write_bytes(pickle.dumps({"backbone.stem.weight": [0.0]}))
    else:
        _edit_tensors(weights, {"wrong_shape": _wrong_shape, "nan": _nan}[edit])
    with pytest.raises(TlearnError, match=rf"model\.safetensors {reason}.*train the run again"):
        Run(run).predict(data / "test" / "red")
    with pytest.raises(TlearnError, match=rf"model\.safetensors {reason}"):
        load_source(str(run))  # the run as the backbone of a new run


@pytest.mark.parametrize("classes, reason", [
    (["red", "blue", "green"], r"model\.safetensors does not fit .*head\.weight \(2, \d+\) where the model has "
                               r"\(3, \d+\)"),
    (["red", "red"], r"classes\.json is not a list of distinct class names"),
    ({"red": 0}, r"classes\.json is not a list"), ([], r"classes\.json is not a list")])
def test_an_edited_classes_json_is_refused(data, run, classes, reason):
    (run / layout.CLASSES).write_text(json.dumps(classes))
    with pytest.raises(TlearnError, match=reason):
        Run(run).predict(data / "test" / "red")


@pytest.mark.parametrize("edit, reason", [
    (lambda c: [c], "not a mapping of sections"),
    (lambda c: {**c, "fit": ["seed", 1]}, "fit section"),
    (lambda c: {**c, "task": {"kind": "multilabel", "thresholds": {"red": "abc"}}}, "task thresholds"),
    (lambda c: {**c, "task": {"kind": "multilabel", "thresholds": {"red": float("nan")}}}, "task thresholds"),
    (lambda c: {**c, "task": {"kind": "regression"}}, "task kind"),
    (lambda c: {**c, "task": {"kind": "multilabel", "cutoffs": 1}}, "task section")])
def test_an_edited_config_yaml_is_refused_naming_it(run, edit, reason):
    config = yaml.safe_load((run / layout.CONFIG).read_text())
    (run / layout.CONFIG).write_text(yaml.safe_dump(edit(config)))
    with pytest.raises(TlearnError, match=rf"config\.yaml .*{reason}"):
        Run(run)


# ---- multi-label manifests: the single-label rule for paths outside the folder ---------------------------------

def test_a_multilabel_manifest_with_paths_outside_its_folder_is_warned_about_like_a_single_label_one(
        tmp_path, caplog):
    from multilabel_fixtures import write_multilabel_set
    from tlearn.data.layout import load_splits

    manifest = write_multilabel_set(tmp_path / "inside" / "set", n=12)
    outside = tmp_path / "outside.png"
    shutil.copy(manifest.parent / "images" / "img000.png", outside)
    rows = list(csv.reader(manifest.open()))
    rows.append(["../../outside.png", "red", "train"])
    with manifest.open("w", newline="") as f:
        csv.writer(f).writerows(rows)
    single = manifest.parent / "single.csv"
    single.write_text("path,label\n" + "".join(f"images/img{i:03d}.png,{'ab'[i % 2]}\n" for i in range(12))
                      + "../../outside.png,a\n")
    for path in (manifest, single):
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="tlearn"):
            load_splits(path)
        warned = [r.getMessage() for r in caplog.records if "lead outside its folder" in r.getMessage()]
        assert len(warned) == 1 and f"../../outside.png -> {outside}" in warned[0], path.name


# ---- exemplars.json of a fine-tuned extension ------------------------------------------------------------------

@pytest.fixture(scope="module")
def replayed(data, tmp_path_factory) -> tuple[Path, Path]:
    """A probe run extended with a new class by LwF with replay (exemplars.json), and a folder of more data."""
    from tlearn.incremental import extend

    runs = tmp_path_factory.mktemp("extended")
    probe = runs / "probe"
    fit(data, probe, **FAST)
    new = write_class_tree(runs / "new" / "train", {"green": 8}, size=24, seed=5).parent
    write_class_tree(new / "test", {"green": 3}, size=24, seed=6)
    extended = runs / "lwf"
    extend(probe, new, extended, method="lwf", replay=2, epochs=1, progress=False)
    more = write_class_tree(runs / "more" / "train", {"plum": 6}, size=24, seed=7).parent
    return extended, more


def _data_folder(exemplars: dict) -> Path:
    """The data folder of the first exemplar (DATA/train/CLASS/IMAGE)."""
    return Path(exemplars["exemplars"][0]["path"]).parents[2]


def _edit_exemplars(run: Path, edit) -> None:
    path = run / "exemplars.json"
    path.write_text(json.dumps(edit(json.loads(path.read_text()))))


@pytest.mark.parametrize("edit, reason", [
    (lambda d, secret: {**d, "exemplars": [{**d["exemplars"][0], "path": str(secret)}, *d["exemplars"][1:]]},
     "is outside the data the run was trained on"),
    (lambda d, secret: {**d, "exemplars": [{**d["exemplars"][0], "path": f"{_data_folder(d)}/../{secret.parent.name}"
                                             "/secret.png"}, *d["exemplars"][1:]]},
     "is outside the data the run was trained on"),  # through '..
    (lambda d, secret: {**d, "exemplars": [{**d["exemplars"][0], "class": "ghost"}]}, "class 'ghost'"),
    (lambda d, secret: {**d, "per_class": 1}, "more than per_class 1"),
    (lambda d, secret: {**d, "per_class": "2"}, "per_class '2'"),
    (lambda d, secret: {**d, "exemplars": [{**d["exemplars"][0], "sha256": 5}]}, "entry 1 is not"),
    (lambda d, secret: {**d, "exemplars": d["exemplars"][:1] * 2}, "entry 2 repeats"),
    (lambda d, secret: [d], r"not \{per_class")])
def test_edited_exemplars_are_refused_before_out_is_written(replayed, tmp_path, edit, reason):
    from tlearn.incremental import extend

    extended, more = replayed
    parent = tmp_path / "parent"
    shutil.copytree(extended, parent)
    secret = tmp_path / "secret.png"  # any file on the machine, here an image, with its true sha256 recorded
    shutil.copy(json.loads((parent / "exemplars.json").read_text())["exemplars"][0]["path"], secret)
    _edit_exemplars(parent, lambda d: edit(d, secret))
    out = tmp_path / "next"
    with pytest.raises(TlearnError, match=rf"exemplars\.json is not usable \(.*{reason}.*edited or damaged"):
        extend(parent, more, out, method="lwf", replay=2, epochs=1, progress=False)
    assert not out.exists() and layout.is_complete(parent)
