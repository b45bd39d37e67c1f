"""What the CLI prints: every command's --help has an example, fit a short summary, and `tlearn predict` writes
CSV (path,predicted,probability) that an odd file name cannot forge."""
from __future__ import annotations

import csv
import io
import json
import shutil

import pytest

from conftest import write_class_tree
from tlearn.cli import COMMANDS, main


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_help_has_an_example(name, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([name, "--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    assert "examples:\n" in text and f"\n  tlearn {name}" in text  # the epilog kept its line breaks


def test_predict_writes_csv_that_odd_file_names_cannot_forge(tmp_path, capsys):
    data = write_class_tree(tmp_path / "data", {"red": 8, "green": 8}, size=32)
    run = tmp_path / "run"
    assert main(["fit", str(data), "--out", str(run), "--image-size", "32", "--num-workers", "0",
                 "--no-progress"]) == 0
    summary = capsys.readouterr().out  # for people: a few lines, not JSON (--json gives that)
    assert summary.startswith("val ") and "accuracy" in summary and f"run: {run}" in summary
    with pytest.raises(json.JSONDecodeError):
        json.loads(summary)
    odd = tmp_path / "odd"
    odd.mkdir()
    names = ["plain.png", "comma,red.png", "tab\tgreen.png", "new\nline,green.png", 'quote"red.png']
    source = sorted((data / "red").glob("*.png"))[0]
    for name in names:
        shutil.copy(source, odd / name)
    assert main(["predict", str(run), str(odd)]) == 0
    out = capsys.readouterr().out
    rows = list(csv.reader(io.StringIO(out, newline="")))
    assert rows[0] == ["path", "predicted", "probability"]
    assert sorted(r[0] for r in rows[1:]) == sorted(str(odd / n) for n in names)
    for path, predicted, probability in rows[1:]:
        assert predicted in {"red", "green"} and 0 <= float(probability) <= 1
    # --json is unchanged: one object per line, the path as given
    assert main(["predict", str(run), str(odd / names[3]), "--json"]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    assert json.loads(line)["path"] == str(odd / names[3])
