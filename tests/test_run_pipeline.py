"""The pieces around the run pipeline: the data-config resolver, typed config sections, old run formats refused
with the file named, and the imports that keep the layers apart."""
from __future__ import annotations

import subprocess
import sys

import pytest

from tlearn.data.transforms import DataConfig
from tlearn.errors import TlearnError
from tlearn.runs import layout
from tlearn.runs.sections import RunSections
from tlearn.runs.source import resolve_data_config
from tlearn.runs.writer import RunWriter


def test_the_users_options_come_before_the_sources_data_config():
    source = DataConfig(input_size=224, train_size=160, dicom_window="none")
    assert resolve_data_config(source) == source
    resolved = resolve_data_config(source, image_size=96, dicom_window="40,400")
    assert (resolved.input_size, resolved.train_size, resolved.dicom_window) == (96, None, "40,400")
    assert resolve_data_config(source, train_size=128).train_size == 128
    assert resolve_data_config(source, image_size=96, train_size=64).training_size == 64


def test_typed_sections_take_the_fit_defaults_once_and_refuse_a_run_without_a_backbone(tmp_path):
    config = {"backbone": {"name": "compact_cnn", "architecture": "compact_cnn", "feature_dim": 8, "weights": "none",
                           "data_config": {"input_size": 24}},
              "data": {"root": "/d", "val_source": "val/", "classes": ["a", "b"]},
              "fit": {"seed": 3}, "strategy": {"name": "linear-probe", "C": 1.0}}
    sections = RunSections.from_config(tmp_path, config)
    assert sections.fit.seed == 3 and sections.fit.val_fraction == 0.2 and sections.fit.device == "auto"
    assert sections.strategy.name == "linear-probe" and sections.strategy.details == {"C": 1.0}
    assert not sections.task.multilabel and sections.lineage == []
    with pytest.raises(TlearnError, match="config.yaml has no usable backbone section"):
        RunSections.from_config(tmp_path, {k: v for k, v in config.items() if k != "backbone"})


def test_a_run_without_run_json_is_refused_with_the_file_named(tmp_path):
    for name in layout.REQUIRED:
        (tmp_path / name).write_text("{}")
    with pytest.raises(TlearnError, match=r"run\.json is missing: .* older tlearn"):
        layout.require_complete(tmp_path)
    assert not layout.is_complete(tmp_path) and layout.written_files(tmp_path) == []


def test_resuming_checkpoints_whose_inputs_were_not_recorded_is_refused(tmp_path):
    (tmp_path / layout.CHECKPOINTS).mkdir()
    layout.write_marker(tmp_path, "training")
    with pytest.raises(TlearnError, match=r"run\.json records no inputs.*without --resume"):
        RunWriter(tmp_path, resume=True).start({"strategy": "finetune"})


@pytest.mark.parametrize("module, absent", [
    ("tlearn.strategies", "tlearn.auto"),  # the registry: auto builds on the strategies, not the reverse
    ("tlearn.runs.writer", "tlearn.report"),  # the report is written by the pipeline's caller, after the run
    ("tlearn.doctor.diagnose", "tlearn.runs.writer"),  # doctor and rank write no run
    ("tlearn.rank.ranking", "tlearn.runs.writer"),
])
def test_layers_stay_apart(module, absent):
    code = f"import sys, {module}; sys.exit({absent!r} in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0, f"{module} imports {absent}"


def test_a_report_failure_never_loses_the_run_and_every_phase_is_timed(tiny_tree, tmp_path, monkeypatch, caplog):
    import tlearn.report.build as build
    from tlearn.fitting import fit
    from tlearn.runs.run import Run

    def broken(*args, **kwargs):
        raise RuntimeError("no report today")

    monkeypatch.setattr(build, "write_report", broken)
    out = tmp_path / "run"
    with caplog.at_level("INFO", logger="tlearn"):
        run = fit(tiny_tree, out, strategy="linear-probe", backbone="compact_cnn", weights="none", image_size=24,
                  num_workers=0, progress=False)
    assert layout.is_complete(out) and not (out / layout.REPORT).exists()
    phases = Run(out).metrics["phase_seconds"]
    assert set(phases) >= {"load", "leakage_check", "backbone", "features", "training", "evaluation", "report"}
    assert all(s >= 0 for s in phases.values()) and run.metrics == Run(out).metrics
    assert "could not write" in caplog.text and "phases: load" in caplog.text
