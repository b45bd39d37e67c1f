"""tlearn select: the methods on synthetic features (typiclust covers every cluster where random misses some, no
two copies picked, margin picks near the boundary), the command end to end on a tiny image folder (a copy and an
unreadable file planted), the list filled in and read back by fit, --val-fraction 0 and one image per class."""
from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import write_class_tree
from tlearn.cli import main
from tlearn.data.layout import load_splits
from tlearn.errors import DataError
from tlearn.select.methods import MARGIN_CANDIDATES, Picker, choose, embed, margins
from tlearn.select.simulate import simulate_selection
from tlearn.strategies.linear_probe import FIXED_C, LinearProbe
from tlearn.strategies.semi_supervised import choose_semi_supervised

FAST_ARGS = ["--backbone", "compact_cnn", "--weights", "none", "--image-size", "32", "--no-progress"]
SIZES = [60, 45, 30, 20, 15, 10, 8, 6]  # eight clearly separated clusters of uneven sizes


def clustered(seed: int = 0, dim: int = 32) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 10, (len(SIZES), dim))
    X = np.concatenate([c + rng.normal(0, 0.5, (n, dim)) for c, n in zip(centres, SIZES)]).astype(np.float32)
    y = np.repeat(np.arange(len(SIZES)), SIZES)
    return X, y


def test_typiclust_covers_every_cluster_where_random_misses_some():
    X, y = clustered()
    z = embed(X)
    covered = {}
    for method in ("typiclust", "probcover", "random"):
        covered[method] = [len(set(y[[p.index for p in choose(method, z, len(SIZES), Picker(len(X), range(len(X))),
                                                              seed=seed)]])) for seed in range(5)]
    assert covered["typiclust"] == [len(SIZES)] * 5
    assert covered["probcover"] == [len(SIZES)] * 5
    assert min(covered["random"]) < len(SIZES)  # 8 draws over uneven clusters miss some


def test_typiclust_picks_the_typical_not_the_outlier():
    X, y = clustered()
    X = np.concatenate([X, X[:1] + 6.0])  # an outlier beside cluster 0
    picks = choose("typiclust", embed(X), len(SIZES), Picker(len(X), range(len(X))))
    assert len(X) - 1 not in [p.index for p in picks]
    assert all(p.why.startswith("typiclust: most typical image of cluster") for p in picks)


@pytest.mark.parametrize("method", ["typiclust", "probcover", "random", "margin", "badge"])
def test_copies_are_never_both_picked(method):
    X, y = clustered(1)
    copies = [(i, len(X) + k) for k, i in enumerate(range(0, len(X), 3))]  # a copy of every third image
    X = np.concatenate([X, X[[i for i, _ in copies]] + 1e-4])
    y = np.concatenate([y, y[[i for i, _ in copies]]])
    labelled = [0, 60]
    probe = LinearProbe().fit(X[:150], y[:150])
    probs = np.zeros((len(X), len(SIZES)))
    probs[:, probe.classes_] = probe.predict_proba(X)
    picker = Picker(len(X), [i for i in range(len(X)) if i not in labelled], [list(c) for c in copies])
    for i in labelled:
        picker.block(i)
    picks = [p.index for p in choose(method, embed(X), 120, picker, labelled, 0, probs, [str(c) for c in SIZES])]
    assert len(picks) == len(set(picks)) == 120
    for a, b in copies:
        assert not (a in picks and b in picks)
    assert not set(picks) & {0, 60, copies[0][1]}  # labelled rows and the copy of a labelled one


def test_margin_picks_where_the_probe_is_unsure():
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(-1, 1, (300, 8)), rng.normal(1, 1, (300, 8))]).astype(np.float32)
    y = np.repeat([0, 1], 300)
    labelled = list(rng.choice(300, 10, replace=False)) + list(300 + rng.choice(300, 10, replace=False))
    probs = LinearProbe().fit(X[labelled], y[labelled]).predict_proba(X)
    m, _ = margins(probs)

    def picked(method):
        picker = Picker(len(X), [i for i in range(len(X)) if i not in labelled])
        return [p.index for p in choose(method, embed(X), 10, picker, labelled, 0, probs, ["a", "b"])]

    unsure = np.sort(np.delete(m, labelled))[MARGIN_CANDIDATES * 10 - 1]  # the least-sure candidates
    assert m[picked("margin")].max() <= unsure < np.median(np.delete(m, labelled))
    assert m[picked("margin")].mean() < m[picked("random")].mean() - 0.1


def test_simulation_typiclust_beats_random_at_one_label_per_class():
    X, y = clustered(2)
    Xt, yt = clustered(2)  # the same clusters
    out = simulate_selection(X, y, Xt, yt, [str(c) for c in SIZES], ["random", "typiclust", "margin"], [1, 2],
                             seeds=[0, 1, 2])
    rows = {(r["method"], r["per_class"]): r for r in out["summary"]["rows"]}
    assert rows[("typiclust", 1)]["accuracy_mean"] == 1.0
    assert rows[("typiclust", 1)]["gain_vs_random"] > 0.05
    assert out["summary"]["labels_to_target"]["typiclust"] == {"per_class": 1, "labels": 8}
    assert {r["labels"] for r in out["records"] if r["per_class"] == 2} == {16}  # rounds add up


def test_probe_from_one_image_per_class_uses_fixed_settings():
    X, y = clustered(3)
    one = [int(np.flatnonzero(y == c)[0]) for c in range(len(SIZES))]
    probe = LinearProbe().fit(X[one], y[one])
    assert probe.folds_used_ == 0 and probe.C_ == FIXED_C and probe.cv_scores_ == {}
    assert "fixed defaults" in probe.settings_source
    assert (probe.predict(X) == y).mean() > 0.95
    two = one + [int(np.flatnonzero(y == c)[1]) for c in range(len(SIZES))]
    assert LinearProbe().fit(X[two], y[two]).folds_used_ == 2


# ---- the command on images ---------------------------------------------------------------------------------------

@pytest.fixture
def pool(tmp_path) -> Path:
    """Two colour classes flattened into one unlabeled folder, with a byte copy and an unreadable file."""
    labelled = write_class_tree(tmp_path / "tree", {"red": 10, "blue": 10}, size=40, seed=0)
    folder = tmp_path / "pool"
    folder.mkdir()
    for f in sorted(labelled.rglob("*.png")):
        shutil.copy(f, folder / f"{f.parent.name}_{f.name}")
    shutil.copy(folder / "red_red_0.png", folder / "copy_of_red_0.png")
    (folder / "broken.png").write_bytes(b"not an image")
    return folder


def _rows(csv_path: Path) -> list[dict]:
    with open(csv_path, newline="") as f:
        return list(csv.DictReader(f))


def test_select_end_to_end_then_fit_reads_the_filled_list(pool, tmp_path, capsys):
    out = tmp_path / "round1"
    assert main(["select", str(pool), "--budget", "21", "--out", str(out), "--json", *FAST_ARGS]) == 0
    result = json.loads(capsys.readouterr().out)
    rows = _rows(out / "to_label.csv")
    assert list(rows[0]) == ["path", "rank", "method", "why", "label"]
    names = [Path(r["path"]).name for r in rows]
    assert "broken.png" not in names and not {"red_red_0.png", "copy_of_red_0.png"} <= set(names)
    assert len(rows) == 20 == result["picked"]  # 22 files: one unreadable, one a copy
    assert [Path(s["path"]).name for s in result["skipped"]] == ["broken.png"]
    assert result["copies_left_out"] == 1 and [r["rank"] for r in rows] == [str(k) for k in range(1, 21)]
    page = (out / "to_label.html").read_text()
    assert page.count("<img") == 20 and "broken.png" in page

    # without --overwrite the (perhaps labelled) list is kept
    before = (out / "to_label.csv").read_bytes()
    assert main(["select", str(pool), "--budget", "3", "--out", str(out), *FAST_ARGS]) == 2
    assert "--overwrite" in capsys.readouterr().err and (out / "to_label.csv").read_bytes() == before

    # one image per class labelled, the rest left empty: fit reads it, with no val
    for colour in ("red", "blue"):
        next(r for r in rows if Path(r["path"]).name.startswith(colour))["label"] = colour
    with open(out / "to_label.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    splits = load_splits(out / "to_label.csv", 0.0)
    assert len(splits.train) == 2 and splits.val == [] and "--val-fraction 0" in splits.val_source
    run = tmp_path / "run"
    assert main(["fit", str(out / "to_label.csv"), "--out", str(run), "--val-fraction", "0", "--json",
                 *FAST_ARGS]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    strategy = yaml.safe_load((run / "config.yaml").read_text())["strategy"]
    assert "val" not in metrics and "test" not in metrics and "fixed defaults" in strategy["settings_from"]

    # the rest of the list as --unlabeled: judged, recorded (one image per class and no val: nothing to judge on)
    run_u = tmp_path / "run-unlabeled"
    assert main(["fit", str(out / "to_label.csv"), "--out", str(run_u), "--val-fraction", "0", "--unlabeled",
                 str(out / "to_label.csv"), *FAST_ARGS]) == 0
    unlabeled = yaml.safe_load((run_u / "config.yaml").read_text())["strategy"]["unlabeled"]
    assert unlabeled["unlabeled_images"] == 18 and unlabeled["chosen"] == "none" and "1 image" in unlabeled["why"]
    printed = capsys.readouterr().out
    assert "no val: the probe's settings come from fixed defaults" in printed and "unlabeled images: 18; not used" in printed

    # round 2 from the labels: auto stays with typiclust at 1 label per class; margin, asked for, ranks by the
    # probe; neither picks an image already labelled
    auto = tmp_path / "round2-auto"
    assert main(["select", str(pool), "--budget", "4", "--labeled", str(out / "to_label.csv"), "--out", str(auto),
                 *FAST_ARGS]) == 0
    assert {r["method"] for r in _rows(auto / "to_label.csv")} == {"typiclust"}
    out2 = tmp_path / "round2"
    assert main(["select", str(pool), "--budget", "4", "--labeled", str(out / "to_label.csv"), "--out", str(out2),
                 "--method", "margin", *FAST_ARGS]) == 0
    rows2 = _rows(out2 / "to_label.csv")
    assert {r["method"] for r in rows2} == {"margin"} and len(rows2) == 4
    assert not {r["path"] for r in rows2} & {r["path"] for r in rows if r["label"]}
    assert all(r["predicted"] in ("red", "blue") and r["why"].startswith("margin: probe unsure") for r in rows2)


def test_margin_without_labels_is_refused(pool, tmp_path, capsys):
    assert main(["select", str(pool), "--budget", "3", "--out", str(tmp_path / "o"), "--method", "margin",
                 *FAST_ARGS]) == 2
    assert "--labeled" in capsys.readouterr().err


def test_val_fraction_zero_keeps_every_image(tmp_path):
    data = write_class_tree(tmp_path / "d", {"a": 2, "b": 2})
    splits = load_splits(data, 0.0)
    assert len(splits.train) == 4 and not splits.val
    held = load_splits(data, 0.2)  # one image per class held out, one left to train on (the probe's fixed settings)
    assert len(held.train) == 2 and len(held.val) == 2


def test_manifest_with_only_empty_labels_is_refused(tmp_path):
    (tmp_path / "a.png").write_bytes(b"")
    (tmp_path / "m.csv").write_text("path,label\na.png,\n")
    with pytest.raises(DataError, match="no labelled rows"):
        load_splits(tmp_path / "m.csv", 0.0)


def _stripes(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Two long parallel stripes (class 0 below, class 1 above), padded to 8 dimensions."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-6, 6, 2 * n)
    y = np.repeat([0, 1], n)
    X = np.zeros((2 * n, 8))
    X[:, 0], X[:, 1] = x, 1.5 * y + rng.normal(0, 0.2, 2 * n)
    return X, y


def test_unlabeled_images_used_only_when_val_says_they_pay():
    X_u, _ = _stripes(300, 0)
    X_val, y_val = _stripes(100, 1)
    # two labels per class, at opposite ends of the stripes: the plain probe's boundary is tilted
    X = np.array([[-5, 0] + [0] * 6, [-4, 0] + [0] * 6, [4, 1.5] + [0] * 6, [5, 1.5] + [0] * 6], dtype=float)
    y = np.array([0, 0, 1, 1])
    plain = LinearProbe(features="raw").fit_fixed(X, y, 2, C=1.0)
    kept, record = choose_semi_supervised(plain, X, y, X_u, 2, X_val, y_val)
    assert record["chosen"] in ("self-training", "label-spreading") and record["pseudo_labelled"] > 0
    assert record["scores"][record["chosen"]] > record["scores"]["none"]
    assert (kept.predict(X_val) == y_val).mean() > (plain.predict(X_val) == y_val).mean()
    # unlabeled images of a third kind (far off, all alike) do not pay: the probe stays as it was
    noise = np.full((300, 8), 40.0) + np.random.default_rng(2).normal(0, 0.1, (300, 8))
    good = LinearProbe(features="raw").fit_fixed(*_stripes(100, 3), 2, C=1.0)
    assert (good.predict(X_val) == y_val).all()
    kept, record = choose_semi_supervised(good, *_stripes(100, 3), noise, 2, X_val, y_val)
    assert record["chosen"] == "none" and kept is good


def test_study_selection_alone_writes_its_section_and_summary(tmp_path, capsys):
    data = tmp_path / "data"
    write_class_tree(data / "train", {"red": 8, "green": 8, "blue": 8}, size=32, seed=0)
    write_class_tree(data / "test", {"red": 4, "green": 4, "blue": 4}, size=32, seed=1)
    out = tmp_path / "study"
    assert main(["study", str(data), "--out", str(out), "--selection", "random,typiclust,margin", "--budgets", "2,1",
                 "--seeds", "2", "--val-fraction", "0", "--json", *FAST_ARGS]) == 0
    headline = json.loads(capsys.readouterr().out)
    summary = json.loads((out / "summary.json").read_text())["label_selection"]
    assert summary["budgets"] == [1, 2] and summary["methods"] == ["random", "typiclust", "margin"]
    assert {(r["method"], r["per_class"], r["labels"], r["seeds"]) for r in summary["rows"]} == {
        (m, b, 3 * b, 2) for m in ("random", "typiclust", "margin") for b in (1, 2)}
    assert headline["label_selection"]["labels_to_target"].keys() == {"random", "typiclust", "margin"}
    page = (out / "report.html").read_text()
    assert 'id="selection-table"' in page and "Which images to label" in page and not (out / "subsets").exists()
