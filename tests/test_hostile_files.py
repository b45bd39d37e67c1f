"""Hostile names in the files tlearn writes: CSV cells a spreadsheet would run as formulas are quoted (and read
back as written), line-oriented output escapes control characters, and data folders with symbolic link loops
are listed with the loop skipped."""
from __future__ import annotations

import csv
import io
import types
from pathlib import Path

import numpy as np
import pytest
from markupsafe import escape

from report_fakes import fake_run
from tlearn.cli import main
from tlearn.commands.output import one_line
from tlearn.data.layout import Sample, _read_manifest
from tlearn.evaluate.predictions import read_predictions
from tlearn.files import spreadsheet_plain, spreadsheet_row, spreadsheet_safe
from tlearn.report import build_report
from tlearn.runtime import _spreadsheet_row

FORMULA = '=HYPERLINK("x")'
CELLS = [FORMULA, "+1+1", "-x", "@sum", "\tx", "\rx", "'=a", "''-b", "plain", "'quoted", "", "-", "-0.5", "+3",
         "1e-5", "-.5", "a=b"]


def test_formula_cells_get_a_quote_numbers_stay_and_reading_undoes_it():
    written = spreadsheet_row(CELLS)
    assert written[:8] == ["'" + c for c in CELLS[:8]]
    assert written[8:] == ["plain", "'quoted", "", "'-", "-0.5", "+3", "1e-5", "-.5", "a=b"]
    assert [spreadsheet_plain(c) for c in written] == CELLS  # an exact round trip, quotes included
    assert spreadsheet_safe(-0.5) == -0.5 and spreadsheet_safe(3) == 3
    assert _spreadsheet_row(CELLS) == written  # the copy in the standalone runtime agrees


def test_predictions_csv_quotes_a_formula_label_and_the_report_shows_it(tmp_path):
    classes = [FORMULA, "plain"]
    odd = "/data/-odd\nname.jpg"
    run = fake_run(tmp_path / "run", classes, {"val": [(Path(odd), 0), (Path("/data/b.jpg"), 1)] * 3})
    with open(run / "predictions" / "val.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    assert rows[0][4] == "p:" + FORMULA  # a header cell starting with p: is text already
    assert rows[1][1] == "'" + FORMULA and rows[1][0] == odd
    assert all(not cell.startswith("'") for row in rows[1:] for cell in row[3:])  # probabilities: numbers
    table = read_predictions(run / "predictions" / "val.csv", classes)
    assert table.paths[0] == odd and list(table.labels) == [0, 1] * 3
    html = build_report(run)
    assert str(escape(FORMULA)) in html and str(escape("'" + FORMULA)) not in html


def test_history_quotes_text_cells_but_not_negative_numbers(tmp_path):
    from tlearn.report.contents import _read_history
    from tlearn.runs.layout import write_history

    write_history(tmp_path / "history.csv", [{"epoch": 1, "lr": -0.5, "train_loss": 1.0, "phase": "=head"}])
    text = (tmp_path / "history.csv").read_text()
    assert ",-0.5," in text and ",'=head" in text
    (row,) = _read_history(tmp_path / "history.csv")
    assert row["lr"] == -0.5 and row["phase"] == "=head"


def test_manifests_tlearn_writes_read_back_with_the_original_label(tmp_path):
    from tlearn.data.layout import DataSplits
    from tlearn.incremental.protocol import _write_manifest

    image = tmp_path / "a.jpg"
    image.write_bytes(b"x")
    splits = DataSplits(str(tmp_path), ["-minus", FORMULA], [Sample(image, 0), Sample(image, 1)], [], [], "none")
    _write_manifest(tmp_path / "m.csv", splits, {"-minus", FORMULA})
    assert "'=HYPERLINK" in (tmp_path / "m.csv").read_text()
    assert [label for _, label, _, _ in _read_manifest(tmp_path / "m.csv")] == ["-minus", FORMULA]


def test_predict_csv_quotes_a_formula_label(tmp_path, capsys, monkeypatch):
    class FakeRun:
        classes, multilabel = [FORMULA, "b"], False

        def __init__(self, path):
            pass

        def predict(self, images, **_):
            pred = types.SimpleNamespace(source="/x/@name.jpg", predicted=FORMULA, probability=0.75)
            return [pred], [types.SimpleNamespace(path="/x/bad\nname.jpg", reason="not an image")]

    monkeypatch.setattr("tlearn.runs.run.Run", FakeRun)
    assert main(["predict", str(tmp_path), str(tmp_path)]) == 0
    captured = capsys.readouterr()
    rows = list(csv.reader(io.StringIO(captured.out, newline="")))
    assert rows[1] == ["/x/@name.jpg", "'" + FORMULA, "0.7500"]
    assert captured.err.splitlines() == ["skipped /x/bad\\nname.jpg: not an image"]


def test_one_line_escapes_control_characters():
    assert one_line("a\nb\tc\rd\x1be\u2028f é,") == "a\\nb\\tc\\rd\\x1be\\u2028f é,"
    assert "\n" not in one_line(Path("x\ny.jpg"))


def _looping_set(root: Path) -> Path:
    from conftest import write_class_tree

    data = write_class_tree(root / "train", {"red": 6, "green": 6}, size=32).parent
    (data / "train" / "red" / "self.jpg").symlink_to("self.jpg")  # ln -s self.jpg self.jpg
    (data / "train" / "loop").symlink_to("loop")  # a class-folder-level loop too
    return data


def test_symbolic_link_loops_are_skipped_with_their_reason(tmp_path):
    from tlearn.data.layout import load_splits

    data = _looping_set(tmp_path)
    splits = load_splits(data)
    reasons = {Path(s.path).name: s.reason for s in splits.skipped}
    assert set(reasons) == {"self.jpg", "loop"} and all("symbolic link loop" in r for r in reasons.values())
    assert splits.classes == ["green", "red"] and len(splits.train) + len(splits.val) == 12


def test_doctor_lists_a_symbolic_link_loop_instead_of_crashing(tmp_path):
    from tlearn.doctor import diagnose

    data = _looping_set(tmp_path)
    report = diagnose(data, cache_dir=str(tmp_path / "cache"), backbone="compact_cnn", weights="none",
                      image_size=32, progress=False)
    assert any(Path(s["path"]).name == "self.jpg" and "loop" in s["reason"] for s in report.skipped)
