"""tlearn rank and fit --backbone auto, end to end on tiny synthetic images (lite0 + a tiny run as sources)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.conftest import write_class_tree
from tlearn.cli import main
from tlearn.data.layout import load_splits
from tlearn.fitting import fit
from tlearn.rank.metrics import leep
from tlearn.runs.run import Run

FAST = ["--no-progress", "--num-workers", "0"]


@pytest.fixture(scope="module")
def colours(tmp_path_factory) -> Path:
    return write_class_tree(tmp_path_factory.mktemp("rank") / "colours", {"red": 10, "green": 10, "blue": 10},
                            size=32, seed=3)


@pytest.fixture(scope="module")
def source_run(tmp_path_factory) -> Path:
    """A run trained on other images of the same kind: a domain-to-domain source with its own 3-class head."""
    data = write_class_tree(tmp_path_factory.mktemp("src") / "other", {"a": 8, "b": 8, "c": 8}, size=32, seed=9)
    return fit(data, tmp_path_factory.mktemp("runs") / "src", strategy="scratch", backbone="compact_cnn",
               weights="none", image_size=24, epochs=2, num_workers=0, progress=False).path


def _rank_json(capsys, *args: str) -> list[dict]:
    capsys.readouterr()
    assert main(["rank", *args, "--json", *FAST]) == 0
    return json.loads(capsys.readouterr().out)


def test_rank_json_lists_every_source_and_metric_best_first(colours, source_run, capsys):
    sources = ["efficientnet_lite0", str(source_run)]
    rows = _rank_json(capsys, str(colours), "--rank-sources", ",".join(sources), "--rank-metric", "all",
                      "--verify-probe")
    assert [r["metric"] for r in rows] == ["logme"] * 2 + ["leep"] * 2 + ["nce"] * 2 + ["hscore"] * 2
    for row in rows:
        assert set(row) == {"source", "metric", "score", "seconds", "probe_accuracy"}
        assert np.isfinite(row["score"]) and row["seconds"] >= 0 and 0 <= row["probe_accuracy"] <= 1
    for metric in ("logme", "leep", "nce", "hscore"):
        block = [r for r in rows if r["metric"] == metric]
        assert {r["source"] for r in block} == set(sources)
        assert block[0]["score"] >= block[1]["score"]
    # one probe per source, the same whichever metric's row carries it
    assert len({(r["source"], r["probe_accuracy"]) for r in rows}) == 2
    # without --verify the entry has no probe_accuracy
    plain = _rank_json(capsys, str(colours), "--rank-sources", sources[0])
    assert set(plain[0]) == {"source", "metric", "score", "seconds"} and plain[0]["metric"] == "logme"


def test_a_run_directory_is_scored_through_its_own_head(colours, source_run, capsys):
    rows = _rank_json(capsys, str(colours), "--rank-sources", str(source_run), "--rank-metric", "leep",
                      "--precision", "fp32")
    train = load_splits(colours).train
    predictions, _ = Run(source_run).predict([s.path for s in train], precision="fp32")
    run_classes = Run(source_run).classes
    probs = np.array([[p.probabilities[c] for c in run_classes] for p in predictions])
    assert probs.shape == (len(train), 3)
    assert rows[0]["score"] == pytest.approx(leep(probs, [s.label for s in train]), abs=1e-4)


def test_rank_out_writes_json_and_html_and_keeps_foreign_files(colours, tmp_path, capsys):
    out = tmp_path / "ranked"
    assert main(["rank", str(colours), "--rank-sources", "efficientnet_lite0", "--out", str(out), *FAST]) == 0
    record = json.loads((out / "rank.json").read_text())
    assert record["winner"] == "efficientnet_lite0" and record["table"][0]["metric"] == "logme"
    assert "efficientnet_lite0" in (out / "rank.html").read_text()
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "rank.json").write_text("{\"mine\": 1}")
    assert main(["rank", str(colours), "--rank-sources", "efficientnet_lite0", "--out", str(foreign), *FAST]) == 2
    assert (foreign / "rank.json").read_text() == "{\"mine\": 1}"
    assert "not written by `tlearn rank`" in capsys.readouterr().err


def test_fit_backbone_auto_records_the_table_and_fits_from_the_top_source(colours, source_run, tmp_path):
    out = tmp_path / "auto"
    assert main(["fit", str(colours), "--out", str(out), "--backbone", "auto", "--rank-sources",
                 f"efficientnet_lite0,{source_run}", *FAST]) == 0
    config = yaml.safe_load((out / "config.yaml").read_text())
    table = config["rank"]["table"]
    assert [r["metric"] for r in table] == ["logme", "logme"]
    assert table[0]["score"] >= table[1]["score"]
    assert config["rank"]["winner"] == table[0]["source"] == config["backbone"]["name"]
    assert config["fit"]["backbone"] == "auto"
    html = (out / "report.html").read_text()
    assert 'id="ranking"' in html and "Source ranking" in html


def test_rank_options_without_backbone_auto_are_refused(colours, tmp_path, capsys):
    assert main(["fit", str(colours), "--out", str(tmp_path / "r"), "--rank-metric", "leep", *FAST]) == 2
    assert "add --backbone auto" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_rank_image_size_scores_every_source_at_that_size(colours, source_run, tmp_path):
    out = tmp_path / "small"
    assert main(["rank", str(colours), "--rank-sources", f"efficientnet_lite0,{source_run}", "--image-size", "48",
                 "--out", str(out), *FAST]) == 0
    record = json.loads((out / "rank.json").read_text())
    assert {row["input_size"] for row in record["table"]} == {48}
