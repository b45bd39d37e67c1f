"""run_study end to end on a tiny class tree: cells, nested manifests, skip-finished/resume, CLI, errors.

Two fast strategies stand in for the real ones, so the test exercises the study and not the training loop:
`scratch` is a zero head (chance accuracy, a made-up 3-epoch curve) and `centroid` a nearest-class-mean head on
real features of a tiny random CNN made here (32 px, 8 features), so every cell takes a moment on 2 cores.
"""
from __future__ import annotations

import csv
import json
from collections import OrderedDict
from dataclasses import replace

import pytest
import torch
from torch import nn

from tlearn.backbones import registry
from tlearn.backbones.model import TransferModel
from tlearn.cli import main
from tlearn.config import FitConfig
from tlearn.data.transforms import DataConfig
from tlearn.features.extract import extract_features
from tlearn.strategies import STRATEGIES, FitResult
from tlearn.study import StudyConfig, run_study
from tlearn.study.cells import Cell, cell_fit_config, cell_key

CALLS: list[tuple[str, int]] = []


class FakeScratch:
    name = "scratch"

    def __init__(self, interrupt_after: int | None = None):
        self.interrupt_after = interrupt_after

    def fit(self, ctx):
        if self.interrupt_after is not None and len(CALLS) >= self.interrupt_after:
            raise KeyboardInterrupt
        CALLS.append((ctx.config.data, ctx.config.seed))
        info = ctx.backbone_info
        model = TransferModel(ctx.backbone, info.feature_dim, len(ctx.splits.classes), info.architecture)
        model.head.weight.data.zero_()
        model.head.bias.data.zero_()
        history = [{"epoch": e, "lr": 0.1, "train_loss": 1.0, "val_loss": 1.0, "val_accuracy": a, "seconds": s}
                   for e, a, s in ((1, 0.2, 1.0), (2, 0.3, 2.0), (3, 0.34, 3.0))]
        return FitResult(model=model, history=history)


def _tiny_cnn() -> nn.Module:
    return nn.Sequential(OrderedDict(conv=nn.Conv2d(3, 8, 3, stride=2), act=nn.ReLU(), pool=nn.AdaptiveAvgPool2d(1),
                                     flatten=nn.Flatten(), fc=nn.Linear(8, 1000)))


def _strip(model: nn.Module) -> nn.Module:
    model.fc = nn.Identity()
    return model


TINY = registry.BackboneSpec(
    name="study_tiny_cnn", family="test", data_config=DataConfig(input_size=32, crop_pct=1.0), feature_dim=8,
    create=_tiny_cnn, strip=_strip, groups=lambda m: [("stem", ["conv.weight", "conv.bias"])])
FIT = {"progress": False, "batch_size": 32, "backbone": TINY.name, "weights": "none", "num_workers": 0}


class Centroid:
    """Head = nearest class mean of the training features: it really learns from the labelled subset."""

    name = "centroid"

    def fit(self, ctx):
        info = ctx.backbone_info
        fs = extract_features(ctx.backbone, ctx.splits.train, info.data_config, precision="fp32", device="cpu",
                              cache_dir=ctx.cache_dir, num_workers=0, progress=False)
        feats, labels = torch.from_numpy(fs.features).float(), torch.from_numpy(fs.labels)
        means = torch.stack([feats[labels == c].mean(0) for c in range(len(ctx.splits.classes))])
        model = TransferModel(ctx.backbone, info.feature_dim, len(ctx.splits.classes), info.architecture)
        with torch.no_grad():
            model.head.weight.copy_(means)
            model.head.bias.copy_(-0.5 * (means ** 2).sum(1))
        return FitResult(model=model, history=[{"epoch": 1, "lr": "", "train_loss": 0.0, "seconds": fs.seconds}])


@pytest.fixture
def fake_scratch(monkeypatch):
    CALLS.clear()
    monkeypatch.setitem(registry._REGISTRY, TINY.name, TINY)
    monkeypatch.setitem(STRATEGIES, "scratch", lambda cfg: FakeScratch())
    monkeypatch.setitem(STRATEGIES, "centroid", lambda cfg: Centroid())
    return monkeypatch


def _config(data, out, **kw):
    return StudyConfig(str(data), str(out), strategies=["scratch", "centroid"], fractions=[0.5, 1.0], seeds=2,
                       fit=dict(FIT), **kw)


def _train_rows(manifest):
    with open(manifest) as f:
        rows = list(csv.DictReader(f))
    return {r["path"] for r in rows if r["split"] == "train"}, {r["path"] for r in rows if r["split"] == "val"}


def test_study_writes_records_summary_report_and_skips_finished_cells(tiny_tree, tmp_path, fake_scratch):
    out = tmp_path / "study"
    result = run_study(_config(tiny_tree, out))
    study = json.loads((out / "study.json").read_text())
    assert len(study["cells"]) == 8 and len(CALLS) == 4
    for r in study["cells"]:
        assert {"accuracy", "balanced_accuracy", "n"} <= set(r["val"]) and r["curve"] and r["train_seconds"] > 0
        assert (out / r["run"] / "metrics.json").is_file()
    assert {r["n_train"] for r in study["cells"] if r["fraction"] == 1.0} == {29}
    # nested subsets per seed, one shared validation split
    for seed in (0, 1):
        small, val_small = _train_rows(out / "subsets" / f"seed{seed}" / "f0.5.csv")
        full, val_full = _train_rows(out / "subsets" / f"seed{seed}" / "f1.csv")
        assert small < full and val_small == val_full
    assert _train_rows(out / "subsets/seed0/f0.5.csv")[0] != _train_rows(out / "subsets/seed1/f0.5.csv")[0]
    summary = json.loads((out / "summary.json").read_text())
    # the zero head is at chance; class means of colour blobs are not
    gains = summary["by_strategy"]["centroid"]
    assert gains["accuracy_gain"] > 0.3 and gains["beats_scratch_at_every_fraction"]
    assert summary["accuracy_gain_strategy"] == "centroid" and len(summary["sentences"]) == 3
    html = (out / "report.html").read_text()
    assert html.count('class="plot"') == 3 and "http://" not in html and "https://" not in html
    assert result.summary["labels_saved"] == summary["labels_saved"]

    before = {p: p.stat().st_mtime_ns for p in out.glob("cells/*/*/*/cell.json")}
    CALLS.clear()
    again = run_study(_config(tiny_tree, out))
    assert CALLS == [] and {p: p.stat().st_mtime_ns for p in out.glob("cells/*/*/*/cell.json")} == before
    assert again.summary["table"] == result.summary["table"]

    # a changed fit option gives the cell another key, so it would run again; where it is written does not
    cell, base = Cell("scratch", 1.0, 0), FitConfig(data="d", out=str(out), **FIT)
    key = cell_key(cell_fit_config(cell, base, out / "m.csv", out, True), "sha", 1.0)
    assert key == cell_key(cell_fit_config(cell, replace(base, progress=True), out / "m.csv", out, False), "sha", 1.0)
    assert key != cell_key(cell_fit_config(cell, replace(base, batch_size=16), out / "m.csv", out, True), "sha", 1.0)
    assert key != cell_key(cell_fit_config(cell, base, out / "m.csv", out, True), "other subset", 1.0)
    # options added after studies were published keep their cells' keys at their defaults, and change them when set
    default = cell_key(FitConfig(data="d", out="o", strategy="finetune"), "abc", 1.0)
    # the key of this cell since finetune chooses its recipe from the data's facts (finetune_recipe "auto": a
    # finetune cell may train another recipe than before, so it runs again); group_by, dicom_window, rank_*,
    # empty_label, memory_budget, unlabeled and the trackers leave it unchanged at their defaults
    assert default == "0dc5fcd1dce89551"
    assert default != cell_key(FitConfig(data="d", out="o", strategy="finetune", dicom_window="none"), "abc", 1.0)


def test_interrupted_study_resumes_with_finished_cells_kept(tiny_tree, tmp_path, fake_scratch):
    out = tmp_path / "study"
    fake_scratch.setitem(STRATEGIES, "scratch", lambda cfg: FakeScratch(interrupt_after=2))
    with pytest.raises(KeyboardInterrupt):
        run_study(_config(tiny_tree, out))
    finished = json.loads((out / "study.json").read_text())["cells"]
    assert 0 < len(finished) < 8 and not (out / "summary.json").exists()
    fake_scratch.setitem(STRATEGIES, "scratch", lambda cfg: FakeScratch())
    CALLS.clear()
    partial = run_study(_config(tiny_tree, out, report_only=True))  # a report of what has finished, no training
    assert CALLS == [] and len(partial.study["cells"]) == len(finished) and (out / "report.html").is_file()
    result = run_study(_config(tiny_tree, out))
    assert len(CALLS) == 2  # only the scratch cells that had not finished
    assert len(result.study["cells"]) == 8 and (out / "report.html").is_file()


def test_cli_study_prints_the_answers(tiny_tree, tmp_path, fake_scratch, capsys):
    out = tmp_path / "s"
    assert main(["-q", "study", str(tiny_tree), "--out", str(out), "--strategies", "scratch,centroid",
                 "--fractions", "1.0", "--seeds", "1", "--batch-size", "16", "--backbone", TINY.name,
                 "--weights", "none", "--num-workers", "0", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["accuracy_gain_strategy"] == "centroid" and printed["report"].endswith("report.html")
    study = json.loads((out / "study.json").read_text())
    assert study["config"]["fit"]["batch_size"] == 16 and study["config"]["strategies"] == ["scratch",
                                                                                           "centroid"]


@pytest.mark.parametrize("args, message", [
    (["--fractions", "0,0.5"], "--fractions"),
    (["--fractions", "a,b"], "comma-separated"),
    (["--strategies", "scratch,nope"], "unknown strategy"),
    (["--seeds", "0"], "--seeds"),
    (["--budget-minutes", "-1"], "--budget-minutes"),
])
def test_cli_bad_settings_are_named(tiny_tree, tmp_path, capsys, args, message):
    assert main(["study", str(tiny_tree), "--out", str(tmp_path / "s"), *args]) == 2
    assert message in capsys.readouterr().err


def test_demo_study_preset_is_a_valid_small_study(tmp_path):
    from tlearn.study.presets import demo_study_config

    cfg = demo_study_config(tmp_path / "data", tmp_path / "study")
    assert cfg.strategies[0] == "scratch" and cfg.seeds == 1 and max(cfg.fractions) == 1.0
    assert all(s in STRATEGIES for s in cfg.strategies)


def test_budget_minutes_becomes_the_fit_time_budget_of_every_cell(tmp_path):
    from tlearn.study.runner import resolve_fit_options

    cfg = StudyConfig(str(tmp_path), str(tmp_path / "s"), budget_minutes=1.5, fit={"epochs": 4})
    assert resolve_fit_options(cfg) == {"epochs": 4, "max_seconds": 90.0}
    with pytest.raises(Exception, match="not both"):
        resolve_fit_options(StudyConfig(str(tmp_path), str(tmp_path / "s"), budget_minutes=1,
                                        fit={"max_seconds": 10}))
    with pytest.raises(Exception, match="set per cell"):
        StudyConfig(str(tmp_path), str(tmp_path / "s"), fit={"strategy": "finetune"})


class SeesResume:
    """Records whether fit asked it to resume, then fails like a checkpoint that does not fit (once)."""

    seen: list[bool] = []

    def __init__(self, cfg):
        self.cfg = cfg

    def fit(self, ctx):
        SeesResume.seen.append(bool(ctx.config.resume))
        if ctx.config.resume:
            from tlearn.errors import TlearnError
            raise TlearnError("checkpoint settings differ")
        return FakeScratch().fit(ctx)


def test_an_interrupted_cell_resumes_from_its_checkpoints_or_starts_again(tiny_tree, tmp_path, fake_scratch):
    from tlearn.study.cells import PENDING_FILE, run_cell
    from tlearn.runs.layout import write_json

    out = tmp_path / "study"
    cell = Cell("scratch", 1.0, 0)
    cfg = cell_fit_config(cell, FitConfig(data=str(tiny_tree), out=str(out), **FIT), tiny_tree, out, True)
    folder = cell.folder(out)
    (folder / "checkpoints").mkdir(parents=True)
    write_json(folder / PENDING_FILE, {"key": "k1"})
    fake_scratch.setitem(STRATEGIES, "scratch", SeesResume)
    SeesResume.seen.clear()
    record = run_cell(cell, cfg, 29, "k1", out, True)
    # checkpoints without a run.json recording their inputs: the run writer refuses to resume -> a fresh start
    assert SeesResume.seen == [False] and record["resumed"] is False
    assert not (folder / "checkpoints").exists() and not (folder / PENDING_FILE).exists()
    assert json.loads((folder / "cell.json").read_text())["key"] == "k1"
    # another key's leftovers are never resumed
    (folder / "checkpoints").mkdir()
    write_json(folder / PENDING_FILE, {"key": "old"})
    SeesResume.seen.clear()
    run_cell(cell, cfg, 29, "k2", out, True)
    assert SeesResume.seen == [False]


def test_cells_held_by_another_live_process_are_left_to_it_and_dead_locks_taken_over(tiny_tree, tmp_path,
                                                                                     fake_scratch):
    import os
    import socket
    import subprocess
    import sys

    out = tmp_path / "study"
    locks = out / "locks"
    locks.mkdir(parents=True)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    host = socket.gethostname()
    (locks / "scratch-f1-seed0.lock").write_text(json.dumps({"pid": os.getppid(), "host": host}))  # alive
    (locks / "scratch-f0.5-seed0.lock").write_text(json.dumps({"pid": dead.pid, "host": host}))  # died
    cfg = _config(tiny_tree, out)
    cfg.seeds = 1
    result = run_study(cfg)
    trained = {(r["strategy"], r["fraction"]) for r in result.study["cells"]}
    assert ("scratch", 1.0) not in trained and ("scratch", 0.5) in trained and len(trained) == 3
    assert (locks / "scratch-f1-seed0.lock").exists() and not (locks / "scratch-f0.5-seed0.lock").exists()


def test_the_demo_study_gives_small_sources_more_epochs():
    from tlearn.study.presets import DEMO_MAX_EPOCHS, DEMO_STUDY, demo_epochs

    assert demo_epochs(600) == DEMO_STUDY["fit"]["epochs"]  # Fashion-MNIST's 60 per class: the preset
    assert demo_epochs(100) == 19  # LFW's 50 per class: about as many optimizer steps
    assert demo_epochs(12) == DEMO_MAX_EPOCHS
