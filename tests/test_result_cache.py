"""Results cached by content (tlearn.result_cache): read back only for their key and only once their validator
accepts them; anything else is a warning and a recomputation, never a crash."""
from __future__ import annotations

import logging

import numpy as np
import pytest

from tlearn.result_cache import BadEntry, load_result, result_path, save_result


def _validate(meta, arrays):
    if meta.get("n") != len(arrays["x"]):
        raise BadEntry("n does not match x")
    return meta["n"], arrays["x"]


def test_a_result_comes_back_for_its_key_only(tmp_path):
    save_result(tmp_path, "demo", "k1", {"n": 3}, {"x": np.arange(3.0)})
    n, x = load_result(tmp_path, "demo", "k1", _validate)
    assert n == 3 and x.tolist() == [0.0, 1.0, 2.0]
    assert load_result(tmp_path, "demo", "k2", _validate) is None
    assert load_result(None, "demo", "k1", _validate) is None


@pytest.mark.parametrize("damage", ["garbage", "truncated", "other key", "rejected"])
def test_a_damaged_entry_is_a_warning_and_a_miss(tmp_path, caplog, damage):
    save_result(tmp_path, "demo", "k1", {"n": 3}, {"x": np.arange(3.0)})
    path = result_path(tmp_path, "demo", "k1")
    if damage == "garbage":
        path.write_bytes(b"not a cache entry at all")
    elif damage == "truncated":
        path.write_bytes(path.read_bytes()[:40])
    elif damage == "other key":
        save_result(tmp_path, "demo", "k2", {"n": 3}, {"x": np.arange(3.0)})
        result_path(tmp_path, "demo", "k2").replace(path)
    else:
        save_result(tmp_path, "demo", "k1", {"n": 4}, {"x": np.arange(3.0)})
    with caplog.at_level(logging.WARNING, logger="tlearn"):
        assert load_result(tmp_path, "demo", "k1", _validate) is None
    assert any(str(path) in r.getMessage() and "computing it again" in r.getMessage() for r in caplog.records)
