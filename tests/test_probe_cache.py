"""The linear probes' cross-validated fit is kept in the cache: a second identical fit restores it (the same
weights, treatment, C and scores), any change to the features, the labels or the grid fits again, and a damaged
entry is a warning and a refit, never a crash."""
from __future__ import annotations

import logging

import numpy as np
import pytest

from tlearn.result_cache import result_path
from tlearn.strategies.linear_probe import LinearProbe
from tlearn.strategies.multilabel_probe import MultiLabelProbe
from tlearn.strategies.probe_cache import KIND, fit_probe, probe_key


def _data(seed: int = 0, n: int = 30, dim: int = 12, k: int = 3):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, dim))
    y = np.repeat(np.arange(k), n)
    return (centres[y] + rng.normal(size=(len(y), dim))).astype(np.float32), y


def _fits(monkeypatch, cls) -> list[int]:
    calls: list[int] = []
    real = cls.fit

    def counted(self, *args, **kwargs):
        calls.append(1)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(cls, "fit", counted)
    return calls


def _same(a: LinearProbe, b: LinearProbe, X) -> None:
    assert (a.treatment, a.C_, a.cv_scores_, a.folds_used_) == (b.treatment, b.C_, b.cv_scores_, b.folds_used_)
    np.testing.assert_array_equal(a.classes_, b.classes_)
    for wa, wb in zip(a.linear_weights(), b.linear_weights()):
        assert np.array_equal(wa.numpy(), wb.numpy())
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))


@pytest.mark.parametrize("k", [2, 3])
def test_a_second_identical_fit_is_restored_exactly(tmp_path, monkeypatch, k):
    X, y = _data(k=k)
    first, cached = fit_probe(LinearProbe(seed=1), X, y, tmp_path, k)
    assert not cached
    calls = _fits(monkeypatch, LinearProbe)
    again, cached = fit_probe(LinearProbe(seed=1), X, y, tmp_path, k)
    assert cached and calls == []
    _same(first, again, X)


def test_a_change_of_features_labels_grid_or_seed_fits_again(tmp_path, monkeypatch):
    X, y = _data()
    fit_probe(LinearProbe(), X, y, tmp_path, 3)
    calls = _fits(monkeypatch, LinearProbe)
    X2 = X.copy()
    X2[0, 0] += 1e-3
    y2 = y.copy()
    y2[[0, -1]] = y2[[-1, 0]]
    for probe, features, labels in ((LinearProbe(), X2, y), (LinearProbe(), X, y2),
                                    (LinearProbe(Cs=(0.1, 1.0)), X, y), (LinearProbe(seed=7), X, y),
                                    (LinearProbe(features="raw"), X, y)):
        fitted, cached = fit_probe(probe, features, labels, tmp_path, 3)
        assert not cached and fitted.C_ in probe.Cs
    assert len(calls) == 5
    assert fit_probe(LinearProbe(), X2, y, tmp_path, 3)[1]  # each of them is cached in turn


@pytest.mark.parametrize("damage", ["garbage", "weights of another shape", "C off the grid"])
def test_a_damaged_entry_is_refitted_with_a_warning(tmp_path, caplog, damage):
    X, y = _data()
    first, _ = fit_probe(LinearProbe(), X, y, tmp_path, 3)
    path = result_path(tmp_path, KIND, probe_key(LinearProbe(), X, y, 3))
    if damage == "garbage":
        path.write_text("garbage")
    else:
        with np.load(path) as npz:
            arrays = dict(npz)
        if damage == "C off the grid":
            arrays["__meta__"] = np.array(str(arrays["__meta__"]).replace(f'"C": {first.C_!r}', '"C": 123.0'))
        else:
            arrays["coef"] = arrays["coef"][:, :-1]
        with open(path, "wb") as f:
            np.savez(f, **arrays)
    with caplog.at_level(logging.WARNING, logger="tlearn"):
        again, cached = fit_probe(LinearProbe(), X, y, tmp_path, 3)
    assert not cached and any("probe cache entry" in r.getMessage() for r in caplog.records)
    _same(first, again, X)
    assert fit_probe(LinearProbe(), X, y, tmp_path, 3)[1]  # the entry was rewritten


def test_the_multilabel_probe_is_restored_and_follows_its_labels(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(80, 10))
    Y = np.stack([(X[:, 0] > 0), (X[:, 1] > 0.5), np.zeros(80, bool)], axis=1).astype(np.int64)
    Y[3, 2] = 1  # one positive: too few to cross-validate (a fallback label)
    first, cached = fit_probe(MultiLabelProbe(), X, Y, tmp_path)
    assert not cached and 2 in first.fallback_
    calls = _fits(monkeypatch, MultiLabelProbe)
    again, cached = fit_probe(MultiLabelProbe(), X, Y, tmp_path)
    assert cached and calls == []
    assert (again.treatment, again.C_, again.cv_scores_, again.fallback_) == (
        first.treatment, first.C_, first.cv_scores_, first.fallback_)
    np.testing.assert_array_equal(again.predict_proba(X), first.predict_proba(X))
    Y2 = Y.copy()
    Y2[0, 1] = 1 - Y2[0, 1]
    assert not fit_probe(MultiLabelProbe(), X, Y2, tmp_path)[1] and calls == [1]


def test_a_second_identical_probe_run_reuses_the_fit_and_matches(tmp_path):
    from conftest import write_class_tree
    from tlearn import fit

    data = write_class_tree(tmp_path / "data", {"red": 12, "green": 12, "blue": 12}, size=24)
    options = dict(strategy="linear-probe", backbone="compact_cnn", weights="none", image_size=24, progress=False,
                   num_workers=0, cache_dir=str(tmp_path / "cache"))
    first = fit(data, tmp_path / "r1", **options)
    second = fit(data, tmp_path / "r2", **options)
    assert first.config["strategy"]["cv_from_cache"] is False and second.config["strategy"]["cv_from_cache"] is True
    for split in ("val", "test"):
        if split in first.metrics:
            assert first.metrics[split] == second.metrics[split]
    assert (tmp_path / "r1" / "predictions").is_dir()
    for csv in (tmp_path / "r1" / "predictions").iterdir():
        assert csv.read_text() == (tmp_path / "r2" / "predictions" / csv.name).read_text()


def test_a_cached_probe_with_a_class_absent_or_string_labels_is_restored_exactly(tmp_path):
    from tlearn.strategies.linear_probe import LinearProbe
    from tlearn.strategies.probe_cache import fit_probe

    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 6))
    y = np.repeat([0, 1, 3], 20)  # class 2 of 4 has no image
    X[y == 1] += 2.0
    first, hit = fit_probe(LinearProbe(), X, y, tmp_path, num_classes=4)
    again, hit_again = fit_probe(LinearProbe(), X, y, tmp_path, num_classes=4)
    assert not hit and hit_again
    np.testing.assert_allclose(again.predict_proba(X), first.predict_proba(X), atol=1e-12)
    assert list(again.classes_) == [0, 1, 2, 3] and again.n_iter_ == first.n_iter_
    words = np.array(["ant", "bee", "wasp"])[np.repeat([0, 1, 2], 20)]
    first, _ = fit_probe(LinearProbe(), X, words, tmp_path)
    again, hit = fit_probe(LinearProbe(), X, words, tmp_path)
    assert hit and list(again.predict(X)) == list(first.predict(X)) and list(again.classes_) == ["ant", "bee", "wasp"]
