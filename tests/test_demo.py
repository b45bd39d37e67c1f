"""`tlearn demo` on every data source it can fall back to, and end to end through the CLI on a fresh machine's
path (no Debian Fashion-MNIST). Tiny per-class counts keep each test to seconds, the end-to-end one to about a
minute."""
from __future__ import annotations

import gzip
import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tlearn import demo
from tlearn.cli import main
from tlearn.errors import DataError

README = Path(__file__).resolve().parents[1] / "README.md"
FIRST_COMMAND = "python3 -m venv .venv && . .venv/bin/activate && pip install -e . -c constraints.txt && tlearn demo"
TINY = {"train": 3, "val": 2, "test": 2}


def _write_idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def fake_fashion(folder: Path, per_class: dict[str, int]) -> Path:
    """idx.gz files like Debian's: each image carries its label, pool and index in its first pixels."""
    folder.mkdir(parents=True)
    for pool, n in per_class.items():
        labels = np.repeat(np.arange(10), n)
        images = np.zeros((len(labels), 28, 28), np.uint8)
        for i, label in enumerate(labels):
            images[i, 0, :4] = [label, pool == "test", i // 256, i % 256]
        images_file, labels_file = demo.FASHION_FILES[pool]
        _write_idx(folder / images_file, images)
        _write_idx(folder / labels_file, labels)
    return folder


def read_tree(root: Path) -> dict[str, dict[str, list[Path]]]:
    """split -> class -> image files, every one of them opened and decoded."""
    tree = {}
    for split in demo.SPLITS:
        tree[split] = {d.name: sorted(d.glob("*.png")) for d in sorted((root / split).iterdir())}
        for files in tree[split].values():
            for f in files:
                with Image.open(f) as im:
                    im.load()
    return tree


def assert_split_tree(data: demo.DemoData, classes: list[str], per_class: dict[str, int]) -> dict:
    assert data.classes == classes and data.per_class == per_class
    assert data.counts == {s: n * len(classes) for s, n in per_class.items()}
    tree = read_tree(data.path)
    for split, n in per_class.items():
        assert sorted(tree[split]) == sorted(classes)
        assert all(len(files) == n for files in tree[split].values()), (split, n)
    return tree


def test_fashion_mnist_from_debian_files(tmp_path, monkeypatch):
    monkeypatch.setattr(demo, "FASHION_DIR", fake_fashion(tmp_path / "fashion", {"train": 6, "test": 3}))
    data = demo.prepare_demo_data(tmp_path / "cache", per_class=TINY)
    assert data.name == "fashion-mnist" and "dataset-fashion-mnist" in data.source
    tree = assert_split_tree(data, demo.FASHION_CLASSES, TINY)
    seen = set()
    for split, by_class in tree.items():
        for cls, files in by_class.items():
            for f in files:
                label, from_test, hi, lo = np.asarray(Image.open(f))[0, :4].tolist()
                assert demo.FASHION_CLASSES[label] == cls  # each image in its own class's folder
                assert bool(from_test) == (split == "test")  # test only from the source's test images
                seen.add((int(from_test), hi * 256 + lo))
    assert len(seen) == sum(data.counts.values())  # train, val and test disjoint


def test_fashion_mnist_with_few_images_per_class_is_cut_down_not_crashed(tmp_path, monkeypatch):
    monkeypatch.setattr(demo, "FASHION_DIR", fake_fashion(tmp_path / "fashion", {"train": 4, "test": 1}))
    data = demo.prepare_demo_data(tmp_path / "cache")  # the default asks for 60/30/30 per class
    assert_split_tree(data, demo.FASHION_CLASSES, {"train": 3, "val": 1, "test": 1})


def test_lfw_faces_from_scikit_image(tmp_path, monkeypatch):
    monkeypatch.setattr(demo, "FASHION_DIR", tmp_path / "no-fashion-here")
    data = demo.prepare_demo_data(tmp_path / "cache")
    assert data.name == "lfw-faces" and "scikit-image" in data.source
    tree = assert_split_tree(data, ["face", "background"], {"train": 50, "val": 25, "test": 25})  # of 100 each
    indices = [int(re.search(r"_(\d+)\.png$", f.name).group(1))
               for by_class in tree.values() for files in by_class.values() for f in files]
    assert len(set(indices)) == len(indices) == 200
    assert Image.open(tree["test"]["face"][0]).size == (25, 25)


def test_digits_from_scikit_learn_when_scikit_image_is_absent(tmp_path, monkeypatch):
    monkeypatch.setattr(demo, "FASHION_DIR", tmp_path / "no-fashion-here")
    monkeypatch.setitem(sys.modules, "skimage.data", None)  # import fails as if scikit-image were not installed
    data = demo.prepare_demo_data(tmp_path / "cache")
    assert data.name == "digits" and "scikit-learn" in data.source
    tree = assert_split_tree(data, [str(d) for d in range(10)], demo.DEFAULT_PER_CLASS)  # 174+ of each digit
    indices = [f.name.split("_")[1] for by_class in tree.values() for files in by_class.values() for f in files]
    assert len(set(indices)) == len(indices)


def test_a_class_with_too_few_images_is_a_clear_error(tmp_path, monkeypatch):
    images = np.zeros((12, 8, 8), np.uint8)
    labels = np.array([0] * 10 + [1] * 2)
    tiny = demo.Source("tiny", "a test source", ["many", "few"], {"all": (images, labels)})
    monkeypatch.setattr(demo, "SOURCES", [lambda: tiny])
    with pytest.raises(DataError, match=r"class 'few' has 2 image\(s\).*at least 4"):
        demo.prepare_demo_data(tmp_path / "cache")
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())


def test_per_class_counts_are_scaled_to_what_a_source_has():
    images = np.zeros((30, 8, 8), np.uint8)
    source = demo.Source("s", "s", ["a", "b"], {"all": (images, np.array([0] * 10 + [1] * 20))})
    assert demo.plan_per_class(source) == {"train": 6, "val": 2, "test": 2}  # 10 = 60:30:30 of the smallest
    assert demo.plan_per_class(source, {"train": 4, "val": 2, "test": 1}) == {"train": 4, "val": 2, "test": 1}
    with pytest.raises(DataError, match="train >= 2"):
        demo.plan_per_class(source, {"train": 1, "val": 1, "test": 1})


def test_demo_end_to_end_through_the_cli_without_fashion_mnist(tmp_path, monkeypatch, capsys):
    """The README's first command's code path, as on a fresh machine, at a tiny size."""
    monkeypatch.setattr(demo, "FASHION_DIR", tmp_path / "no-fashion-here")
    monkeypatch.setattr(demo, "DEMO_SEEDS", 1)
    out = tmp_path / "demo-out"
    assert main(["demo", "--out", str(out), "--no-progress", "--per-class", "6,3,3"]) == 0
    for name in ("metrics.json", "report.html", "model.safetensors"):
        assert (out / "linear-probe" / name).is_file(), name
    metrics = json.loads((out / "linear-probe" / "metrics.json").read_text())
    assert metrics["val"]["n"] == 6 and metrics["test"]["n"] == 6
    assert (out / "study" / "report.html").is_file() and (out / "study" / "summary.json").is_file()
    text = capsys.readouterr().out
    assert "Data: lfw-faces" in text and "per class: train 6, val 3, test 3" in text
    assert re.search(r"linear-probe\s+\d\.\d{3} / \d\.\d{3}", text)
    study = json.loads((out / "study" / "study.json").read_text())
    assert study["config"]["fractions"] == pytest.approx([2 / 6, 4 / 6, 1.0]) and study["config"]["seeds"] == 1
    assert re.search(r"labelled images\s+4\s+8\s+12\n", text)  # 2, 4 and all 6 per class, 2 classes
    assert re.search(r"scratch(\s+\d\.\d{3}){3}\n", text) and re.search(r"linear-probe(\s+\d\.\d{3}){3}\n", text)
    assert re.search(r"Fewer labels: to reach \d\.\d{3} test accuracy \(90% of scratch's best", text)
    assert re.search(r"Higher accuracy: with 4 labelled images linear-probe reaches \d\.\d{3} against scratch's", text)
    assert "(chosen on val) with 100% of the labels" not in text  # the demo's own labels-saved line, not the study's
    assert "Faster convergence:" in text
    assert str((out / "linear-probe" / "report.html").resolve()) in text
    assert str((out / "study" / "report.html").resolve()) in text
    assert "tlearn fit DATA --out RUN" in text


def _summary(rows: list[tuple[str, float, float]]) -> dict:
    """A study summary.json with only what the demo reads: the table's strategy, n_train, accuracy_mean."""
    return {"metric": "test accuracy", "table": [{"strategy": s, "fraction": n / 100, "n_train": n, "accuracy_mean": a}
                                                 for s, n, a in rows]}


def test_label_savings_at_a_target_below_the_ceiling():
    """Both reach the ceiling with every label (the study's own labels_saved is then 0); the demo reports the
    labels each needs to get to 90% of scratch's best, measured at the tested sizes."""
    summary = _summary([("scratch", 4, 0.66), ("scratch", 20, 0.48), ("scratch", 50, 0.9), ("scratch", 100, 0.98),
                        ("linear-probe", 4, 0.94), ("linear-probe", 20, 0.96), ("linear-probe", 50, 0.97),
                        ("linear-probe", 100, 0.98)])
    savings = demo.label_savings(summary)
    assert savings["target"] == pytest.approx(0.882) and savings["baseline_best"] == 0.98
    assert savings["needed"] == {"scratch": 50, "linear-probe": 4}  # scratch reaches 0.9 >= 0.882 at 50
    assert savings["saved"] == {"linear-probe": pytest.approx(0.92)}
    assert savings["gain_at_fewest"]["linear-probe"] == (4, pytest.approx(0.28))
    lines = demo.curve_lines(summary) + demo.savings_lines(savings, summary)
    assert lines[0].split() == ["labelled", "images", "4", "20", "50", "100"]
    assert lines[1].split() == ["scratch", "0.660", "0.480", "0.900", "0.980"]
    assert ("Fewer labels: to reach 0.882 test accuracy (90% of scratch's best, 0.980), linear-probe needed 4 "
            "labelled images, scratch 50: 92% of the labels saved.") in lines
    assert ("Higher accuracy: with 4 labelled images linear-probe reaches 0.940 against scratch's 0.660 (+0.280); "
            "with all 100, 0.980 against 0.980 (+0.000).") in lines
    assert savings["caught_up"] == {"linear-probe": 100}  # at 50 scratch is 0.07 behind
    assert ("Where the curves meet: from 100 labelled images scratch is within 0.02 of linear-probe or better; "
            "transfer's gain on this task is with fewer labels.") in lines


def test_where_the_curves_meet():
    assert demo.catches_up({4: 0.86, 8: 0.96, 20: 0.967, 100: 0.987}, {4: 0.94, 8: 0.947, 20: 0.973, 100: 0.98}) == 8
    assert demo.catches_up({4: 0.95, 100: 0.99}, {4: 0.94, 100: 0.98}) == 4  # never behind
    assert demo.catches_up({4: 0.5, 8: 0.99, 100: 0.7}, {4: 0.9, 8: 0.9, 100: 0.9}) is None  # behind at the top


def test_label_savings_says_so_when_transfer_never_gets_there():
    summary = _summary([("scratch", 4, 0.7), ("scratch", 100, 0.99), ("linear-probe", 4, 0.6),
                        ("linear-probe", 100, 0.8)])
    savings = demo.label_savings(summary)
    assert savings["needed"] == {"scratch": 100, "linear-probe": None} and savings["saved"] == {"linear-probe": None}
    [fewer, higher, meet] = demo.savings_lines(savings, summary)
    assert "more labelled images than tested (best 0.800)" in fewer and "no labels saved" in fewer
    assert "(-0.100)" in higher and "transfer bought no accuracy here" in meet
    assert demo.label_savings(_summary([("linear-probe", 4, 0.6)])) == {}  # no scratch: nothing to compare


def test_study_fractions_go_from_two_labels_per_class_to_all():
    assert demo.study_fractions(50) == pytest.approx([0.04, 0.08, 0.2, 1.0])
    assert demo.study_fractions(6) == pytest.approx([2 / 6, 4 / 6, 1.0])
    assert demo.study_fractions(2) == [1.0]


def test_readme_first_command_is_the_tested_one():
    """CI fails if the README's first command changes without this test (and the tests above) following it."""
    lines = [line.strip() for line in README.read_text().splitlines() if "tlearn demo" in line]
    assert lines, "README.md has no `tlearn demo` command"
    assert lines[0] == FIRST_COMMAND
