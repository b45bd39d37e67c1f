"""RUN/report.html and `tlearn compare` on run directories made in the test (no training: fast)."""
from __future__ import annotations

import json
import logging
import re

import pytest

from report_fakes import fake_run, labelled_images
from tlearn.cli import main
from tlearn.errors import TlearnError
from tlearn.report import build_report, write_report, write_report_safely
from tlearn.report.compare import compare_runs, format_table, write_compare_html

SECTIONS = ["summary", "metrics", "per-class", "confusion", "calibration", "errors", "curves", "skipped", "config"]


@pytest.fixture
def binary_run(tmp_path, hymenoptera):
    classes = ["ants", "bees"]
    val = labelled_images(hymenoptera / "val", classes, 15)
    val.append((tmp_path / "gone" / "deleted.jpg", 0))  # an image that no longer exists
    return fake_run(tmp_path / "run", classes, {"val": val}, skill=0.8, seed=1, history_rows=1)


def test_binary_report_has_every_section_and_is_self_contained(binary_run):
    html = build_report(binary_run)
    for section in SECTIONS + ["roc"]:
        assert f'id="{section}"' in html, section
    # No network: every image is embedded, no external scripts, styles or fonts.
    assert not re.search(r'(src|href)="(https?:)?//', html)
    assert "<script" not in html
    srcs = re.findall(r'<img[^>]* src="([^"]+)"', html)
    assert srcs and all(s.startswith("data:image/") for s in srcs)
    assert "sensitivity" in html and "specificity" in html and "Youden" in html
    assert "positive class: <b>bees</b>" in html.lower() or "Positive class: <b>bees</b>" in html
    assert "corrupt or truncated image" in html  # skipped files listed
    assert "ants, bees" in html  # summary names the task's classes


def test_missing_gallery_image_is_reported_not_fatal(tmp_path):
    classes = ["a", "b"]
    # every prediction wrong and confident: the gallery must show them, with the images missing
    items = [(tmp_path / f"missing{i}.png", i % 2) for i in range(6)]
    run = fake_run(tmp_path / "run", classes, {"test": items}, skill=-6.0)
    html = build_report(run)
    assert html.count("image not available") == 6
    assert "cannot read file" in html


def test_positive_class_option_and_bad_class(binary_run):
    assert "Positive class: <b>ants</b>" in build_report(binary_run, positive_class="ants")
    with pytest.raises(TlearnError, match="not one of the run's classes"):
        build_report(binary_run, positive_class="wasps")


def test_many_classes_use_a_compact_matrix_and_no_roc(tmp_path):
    classes = [f"{k:05d}" for k in range(43)]
    items = [(tmp_path / "x.png", k) for k in range(43) for _ in range(3)]
    run = fake_run(tmp_path / "run", classes, {"test": items}, skill=2.0)
    html = build_report(run)
    assert 'class="cm large"' in html and 'id="roc"' not in html
    assert "Most frequent mistakes" in html
    assert len(html) < 1_500_000  # light to open


def test_report_includes_every_saved_split_and_marks_problems(tmp_path, binary_run):
    extra = fake_run(tmp_path / "other", ["ants", "bees"], {"field": [(tmp_path / "f.jpg", 1)] * 5})
    (binary_run / "predictions" / "field.csv").write_bytes((extra / "predictions" / "field.csv").read_bytes())
    (binary_run / "predictions" / "stale.csv").write_text("path,label,predicted,confidence,p:x,p:y\n")
    (binary_run / "metrics.json").write_text("{not json")
    html = build_report(binary_run)
    assert "predictions/field.csv" in html  # metrics recomputed for the split fit never saw
    assert "Problems reading this run" in html and "metrics.json is damaged" in html
    assert "stale.csv has classes" in html


def test_learning_curves_drawn_when_history_has_epochs(tmp_path):
    run = fake_run(tmp_path / "run", ["a", "b", "c"], {"val": [(tmp_path / "x.png", k % 3) for k in range(30)]},
                   history_rows=5)
    html = build_report(run)
    assert 'alt="learning curves"' in html
    single = fake_run(tmp_path / "run1", ["a", "b", "c"], {"val": [(tmp_path / "x.png", k % 3) for k in range(30)]})
    assert "no curve" in build_report(single)


def test_write_report_safely_never_raises(tmp_path, caplog):
    not_a_run = tmp_path / "empty"
    not_a_run.mkdir()
    with caplog.at_level(logging.ERROR, logger="tlearn"):
        assert write_report_safely(not_a_run) is None
    assert "tlearn report" in caplog.text and "the run itself is complete" in caplog.text


def test_report_cli_rewrites_and_errors_clearly(binary_run, tmp_path, capsys):
    assert main(["report", str(binary_run)]) == 0
    assert (binary_run / "report.html").stat().st_size > 10_000
    assert main(["report", str(tmp_path / "nowhere")]) == 2
    assert "not a folder" in capsys.readouterr().err


def test_compare_table_and_page(tmp_path, capsys):
    items = [(tmp_path / "x.png", k % 2) for k in range(40)]
    a = fake_run(tmp_path / "a", ["n", "p"], {"val": items, "test": items}, skill=3.0, seed=0)
    b = fake_run(tmp_path / "b", ["n", "p"], {"val": items, "test": items}, skill=0.5, seed=1)
    write_report(a)
    rows = compare_runs([a, b])
    assert [r["run"] for r in rows] == ["a", "b"]
    assert rows[0]["test_accuracy"] > rows[1]["test_accuracy"]
    text = format_table(rows)
    assert "test acc" in text and "val AUROC" in text and "warning" not in text
    page = write_compare_html(rows, tmp_path / "out" / "cmp.html")
    html = page.read_text()
    assert "<b>" + f"{rows[0]['test_accuracy']:.3f}" + "</b>" in html  # the better run's accuracy in bold
    assert 'href="../a/report.html"' in html
    assert main(["compare", str(a), str(b), "--out", str(tmp_path / "c.html")]) == 0
    out = capsys.readouterr().out
    assert "a " in out and "written to" in out and (tmp_path / "c.html").is_file()


def test_compare_writes_no_page_unless_asked(tmp_path, capsys, monkeypatch):
    items = [(tmp_path / "x.png", k % 2) for k in range(10)]
    a = fake_run(tmp_path / "a", ["n", "p"], {"val": items}, seed=0)
    b = fake_run(tmp_path / "b", ["n", "p"], {"val": items}, seed=1)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    assert main(["compare", str(a), str(b)]) == 0
    out = capsys.readouterr().out
    assert "val acc" in out and "written to" not in out
    assert main(["compare", str(a), str(b), "--json"]) == 0
    assert [r["run"] for r in json.loads(capsys.readouterr().out)] == ["a", "b"]
    assert list(cwd.iterdir()) == []  # no compare.html where the user happened to be


def test_compare_warns_about_different_data(tmp_path):
    items = [(tmp_path / "x.png", k % 2) for k in range(10)]
    a = fake_run(tmp_path / "a", ["n", "p"], {"val": items}, data_root="/data/one")
    b = fake_run(tmp_path / "b", ["n", "p"], {"val": items}, data_root="/data/two")
    assert "not comparable" in format_table(compare_runs([a, b]))


def test_learning_curves_mark_phases_and_the_kept_epoch():
    from tlearn.report.plots import learning_curves

    rows = [{"epoch": float(e), "train_loss": 1.0 / e, "val_loss": 0.5 + 0.01 * e, "val_accuracy": 0.8,
             "phase": "head" if e == 1 else "all"} for e in range(1, 5)]
    fig = learning_curves(rows, best_epoch=2)
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert "phase: all" in texts and "model kept" in texts
    assert learning_curves(rows[:1]) is None
