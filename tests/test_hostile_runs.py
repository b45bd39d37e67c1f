"""Runs a user can trust: odd file names, existing folders, stale checkpoints and changed inputs on --resume never
lose a model, delete a user's files or continue silently; a run is readable only once it is complete."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from conftest import write_class_tree
from tlearn.backbones import load_backbone
from tlearn.runs.source import load_source
from tlearn.errors import TlearnError
from tlearn.fitting import fit
from tlearn.runs import layout
from tlearn.runs.run import Run
from tlearn.runs.source import load_source
from tlearn.train.checkpoint import MARKER, checkpoint_dirs, clear_checkpoints, load_checkpoint, save_checkpoint

FAST = dict(backbone="compact_cnn", weights="none", image_size=24, num_workers=0, progress=False,
            train_batch_size=8, batch_size=16, augment="none")


def _data(root: Path) -> Path:
    for split, n, seed in (("train", 6, 0), ("val", 3, 1), ("test", 3, 2)):
        write_class_tree(root / split, {"red": n, "blue": n}, size=24, seed=seed)
    return root


@pytest.fixture
def data(tmp_path) -> Path:
    return _data(tmp_path / "data")


def _scratch(data: Path, out: Path, **options) -> Run:
    return fit(data, out, **{"strategy": "scratch", "epochs": 2, **FAST, **options})


def _history(out: Path) -> list[dict]:
    import csv

    with open(out / "history.csv") as f:
        return list(csv.DictReader(f))


# ---- 2. a file name that is not UTF-8 -------------------------------------------------------------------------

@pytest.mark.skipif(os.name != "posix", reason="file names are bytes on POSIX only")
def test_a_val_file_name_that_is_not_utf8_keeps_the_model_and_its_predictions(data, tmp_path):
    odd = os.fsdecode(str(data / "val" / "red").encode() + b"/\xff\xfe odd.png")
    shutil.copy(next((data / "val" / "red").glob("*.png")), odd)
    out = tmp_path / "run"
    run = fit(data, out, strategy="linear-probe", **FAST)
    assert (out / "model.safetensors").is_file() and run.metrics["val"]["n"] == 7
    raw = (out / "predictions" / "val.csv").read_bytes()
    assert b"\xff\xfe odd.png" in raw  # the name's own bytes, not a replacement character
    assert layout.is_complete(out) and Run(out).predict(odd)[0][0].path == odd


# ---- atomic completion ----------------------------------------------------------------------------------------

def test_a_run_that_crashes_while_being_written_is_refused_not_read_half_old(data, tmp_path, monkeypatch):
    out = tmp_path / "run"
    fit(data, out, strategy="linear-probe", **FAST)
    real = layout.write_json

    def crash_on_metrics(path, obj):
        if Path(path).name == "metrics.json":
            raise OSError("disk full")
        real(path, obj)

    monkeypatch.setattr(layout, "write_json", crash_on_metrics)
    with pytest.raises(OSError, match="disk full"):
        fit(data, out, strategy="linear-probe", **{**FAST, "seed": 1, "overwrite": True})
    monkeypatch.undo()
    assert not (out / "metrics.json").exists()  # the old run's metrics never sit beside the new model
    with pytest.raises(TlearnError, match="incomplete tlearn run"):
        Run(out)
    with pytest.raises(TlearnError, match="incomplete tlearn run"):
        load_source(str(out))  # a run used as --backbone is read through the same reader


# ---- 3. --out on an existing folder, stale checkpoints ----------------------------------------------------------

def test_a_folder_that_is_not_a_run_is_refused_unless_overwrite_and_its_files_are_kept(data, tmp_path):
    out = tmp_path / "mine"
    (out / "predictions").mkdir(parents=True)
    (out / "thesis.tex").write_text("months of work")
    (out / "predictions" / "mine.csv").write_text("a,b\n")
    with pytest.raises(TlearnError, match="--overwrite"):
        fit(data, out, strategy="linear-probe", **FAST)
    assert sorted(p.name for p in out.iterdir()) == ["predictions", "thesis.tex"]
    fit(data, out, strategy="linear-probe", overwrite=True, **FAST)
    fit(data, out, strategy="linear-probe", overwrite=True, **{**FAST, "seed": 1})  # and again: still kept
    assert (out / "thesis.tex").read_text() == "months of work" and (out / "predictions" / "mine.csv").is_file()
    assert Run(out).config["fit"]["seed"] == 1


def test_cli_refuses_a_foreign_folder_and_names_overwrite(data, tmp_path, capsys):
    from tlearn.cli import main

    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep")
    assert main(["fit", str(data), "--out", str(out), "--backbone", "compact_cnn", "--weights", "none",
                 "--image-size", "24", "--no-progress", "--num-workers", "0"]) == 2
    assert "--overwrite" in capsys.readouterr().err and (out / "notes.txt").read_text() == "keep"


def test_a_new_run_clears_a_stale_run_and_its_checkpoints_but_not_a_users_files(data, tmp_path):
    out = tmp_path / "run"
    _scratch(data, out, epochs=3)
    ckpt = out / "checkpoints"
    stale = ckpt / "epoch-0010"
    shutil.copytree(ckpt / "epoch-0003", stale)  # an older, longer run's last checkpoint
    (ckpt / "last.json").write_text(json.dumps({"dir": stale.name, "epoch": 10}))
    (ckpt / "notes.txt").write_text("mine")
    Run(out).evaluate(data / "test", save_as="extra", progress=False)  # the old model's, recorded in run.json
    (out / "predictions" / "mine.csv").write_text("path,label\n")  # not tlearn's: kept
    _scratch(data, out, epochs=2, overwrite=True)
    assert [n for n, _ in checkpoint_dirs(ckpt)] == [2] and (ckpt / "notes.txt").read_text() == "mine"
    assert json.loads((ckpt / "last.json").read_text())["epoch"] == 2
    assert not (out / "predictions" / "extra.csv").exists()  # the report shows this run's predictions only
    assert (out / "predictions" / "mine.csv").is_file()
    resumed = _scratch(data, out, epochs=2, resume=True)  # resumes this run's own last epoch
    assert [int(r["epoch"]) for r in resumed.config and _history(out)] == [1, 2]


def test_a_users_folder_where_checkpoints_go_is_kept_and_named(data, tmp_path):
    out = tmp_path / "run"
    _scratch(data, out)
    user = out / "checkpoints" / "epoch-0001"  # the run kept epoch 2 only
    user.mkdir()
    (user / "plot.png").write_bytes(b"mine")
    with pytest.raises(TlearnError, match="epoch-0001 holds files tlearn did not write"):
        _scratch(data, out, overwrite=True)
    assert (user / "plot.png").read_bytes() == b"mine"


def _loop_state(epoch: int) -> dict:
    """What the training loop keeps in state.json (load_checkpoint checks its types)."""
    return {"epoch": epoch, "history": [], "best": {"epoch": epoch, "val_accuracy": 0.5, "val_loss": 1.0},
            "bad_epochs": 0, "settings": {}, "ema_steps": 0}


def test_checkpoints_are_kept_by_epoch_number_and_only_marked_folders_are_deleted(tmp_path):
    model = torch.nn.Linear(2, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    folder = tmp_path / "ckpt"
    (folder / "epoch-0005").mkdir(parents=True)
    (folder / "epoch-0005" / "notes.txt").write_text("mine")
    for epoch in (9999, 10000):
        save_checkpoint(folder, epoch, model.state_dict(), optimizer, _loop_state(epoch))
    assert [n for n, _ in checkpoint_dirs(folder)] == [10000]  # "epoch-10000" < "epoch-9999" as strings
    assert (folder / "epoch-10000" / MARKER).is_file() and load_checkpoint(folder)[2]["epoch"] == 10000
    assert clear_checkpoints(folder) == [folder / "epoch-0005"]
    assert (folder / "epoch-0005" / "notes.txt").read_text() == "mine" and not (folder / "last.json").exists()


def test_resume_refuses_a_checkpoint_without_the_marker_naming_it(tmp_path):
    model = torch.nn.Linear(2, 2)
    folder = tmp_path / "ckpt"
    save_checkpoint(folder, 1, model.state_dict(), torch.optim.SGD(model.parameters(), lr=0.1), _loop_state(1))
    (folder / "epoch-0001" / MARKER).unlink()  # as an earlier format wrote it
    with pytest.raises(TlearnError, match=r"epoch-0001 has no tlearn-checkpoint file.*without --resume"):
        load_checkpoint(folder)
    assert checkpoint_dirs(folder) == [] and clear_checkpoints(folder) == [folder / "epoch-0001"]  # never deleted


def test_a_run_is_a_backbone_through_runs_source_only(data, tmp_path):
    import tlearn

    out = tmp_path / "run"
    run = _scratch(data, out)
    module, info = load_source(str(out))
    assert info.weights == f"run:{out}" and info.weights_origin == "run" and info.architecture == "compact_cnn"
    trained = {k.removeprefix("backbone."): v for k, v in run.model.state_dict().items() if k.startswith("backbone.")}
    assert all(torch.equal(v, trained[k]) for k, v in module.state_dict().items())
    assert tlearn.load_backbone is load_source  # the public API takes a run too
    second = fit(data, tmp_path / "second", strategy="linear-probe", **{**FAST, "backbone": str(out), "weights": None})
    assert second.config["backbone"]["weights"] == f"run:{out}"  # fit's --backbone goes through the same loader
    with pytest.raises(TlearnError, match="exists but is not a tlearn run directory"):
        load_backbone(str(out))  # the backbones layer knows no runs
    with pytest.raises(TlearnError, match="cannot be combined with a run directory"):
        load_source(str(out), weights="none")
    with pytest.raises(TlearnError, match="exists but is not a tlearn run directory"):
        load_source(str(data))


def test_a_run_config_from_an_earlier_format_is_refused_naming_the_file_and_the_key(data, tmp_path):
    import yaml

    out = tmp_path / "run"
    _scratch(data, out)
    config = yaml.safe_load((out / "config.yaml").read_text())
    del config["backbone"]["data_config"]["dicom_window"]  # as written before DICOM support
    (out / "config.yaml").write_text(yaml.safe_dump(config))
    for read in (Run, lambda path: load_source(str(path))):
        with pytest.raises(TlearnError, match=r"config\.yaml.*dicom_window"):
            read(out)


@pytest.mark.parametrize("key, value, named", [
    ("feature_dim", 10**9, "feature_dim"), ("feature_dim", "8", "feature_dim"),
    ("architecture", "no_such_net", "no_such_net"), ("feature_dim", 255, "feature_dim 255")])
def test_an_edited_backbone_record_is_refused_naming_config_yaml(data, tmp_path, key, value, named):
    import yaml

    out = tmp_path / "run"
    _scratch(data, out)
    config = yaml.safe_load((out / "config.yaml").read_text())
    config["backbone"][key] = value
    (out / "config.yaml").write_text(yaml.safe_dump(config))
    for read in (Run, lambda path: load_source(str(path))):
        with pytest.raises(TlearnError, match=rf"config\.yaml .*{named}"):
            read(out)


# ---- 4. --resume checks what changes the result ---------------------------------------------------------------

@pytest.fixture
def weights_file(tmp_path) -> Path:
    module, _ = load_backbone("compact_cnn", "none")
    torch.manual_seed(3)
    for p in module.parameters():
        torch.nn.init.normal_(p, std=0.05)
    path = tmp_path / "my-weights.safetensors"
    save_file({k: v.contiguous() for k, v in module.state_dict().items()}, str(path))
    return path


def test_resume_with_other_weights_is_refused_naming_them(data, tmp_path, weights_file):
    out = tmp_path / "run"
    _scratch(data, out, strategy="lp-ft", weights=str(weights_file))
    with pytest.raises(TlearnError, match=r"backbone weights .*my-weights.* -> 'none'.*without --resume"):
        _scratch(data, out, strategy="lp-ft", resume=True)
    assert Run(out).config["backbone"]["weights"] == str(weights_file)  # the refused resume changed nothing


def test_resume_with_other_val_or_test_images_is_refused(data, tmp_path):
    out = tmp_path / "run"
    _scratch(data, out)
    extra = data / "test" / "blue" / "extra.png"
    shutil.copy(next((data / "train" / "blue").glob("*.png")), extra)
    with pytest.raises(TlearnError, match="the test images .* changed.*new --out"):
        _scratch(data, out, resume=True)
    extra.unlink()
    moved = next((data / "val" / "red").glob("*.png"))
    moved.rename(data / "val" / "blue" / moved.name)  # same files, another label
    with pytest.raises(TlearnError, match="the val images"):
        _scratch(data, out, resume=True)


def test_resume_after_a_train_image_was_edited_in_place_is_refused(data, tmp_path):
    out = tmp_path / "run"
    _scratch(data, out)
    edited = next((data / "train" / "red").glob("*.png"))
    Image.new("RGB", (24, 24), (0, 255, 0)).save(edited)  # same path, other pixels
    with pytest.raises(TlearnError, match="contents of the train images changed"):
        _scratch(data, out, resume=True)
    assert layout.is_complete(out)  # the refused resume left the finished run as it was
    _scratch(data, out, overwrite=True)  # without --resume it trains from the start


@pytest.mark.parametrize("name", ["val", "test", "../../outside", "a/b", "..", ""])
def test_evaluate_save_as_never_replaces_the_runs_predictions_or_leaves_the_run(name):
    from tlearn.checks import check_save_as

    with pytest.raises(ValueError, match="--save-as"):
        check_save_as(name)
    assert check_save_as("field-2") == "field-2"
