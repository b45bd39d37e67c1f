"""Feature extraction split over torchrun processes (tlearn.features.sharded): `fit --strategy linear-probe` and
`evaluate` under torchrun give what one process gives, and leave the same feature cache behind."""
from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import write_class_tree

PROBE = ["--strategy", "linear-probe", "--backbone", "compact_cnn", "--weights", "none", "--image-size", "32",
         "--batch-size", "8", "--num-workers", "0", "--no-progress", "--seed", "1"]
# what torchrun or gloo say when they cannot start here (no loopback networking, a sandbox): skip, not fail
CANNOT_START = ("DistNetworkError", "RendezvousConnectionError", "RendezvousTimeoutError", "connectFullMesh",
                "Gloo connect", "gloo/transport")


def tlearn(*args: str, cache: Path, processes: int = 1) -> str:
    env = {**os.environ, "TLEARN_CACHE": str(cache), "OMP_NUM_THREADS": "1"}
    launch = ([sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"]
              if processes > 1 else [sys.executable])
    proc = subprocess.run([*launch, "-m", "tlearn", *args], capture_output=True, text=True, env=env, timeout=300)
    if proc.returncode != 0 and processes > 1 and any(s in proc.stderr for s in CANNOT_START):
        pytest.skip(f"torchrun with gloo cannot start here: {proc.stderr[-300:]}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def cache_rows(cache: Path) -> dict[str, dict[str, bytes]]:
    """{cache file: {image sha256: feature bytes}} of a feature cache."""
    out = {}
    for db in sorted((cache / "features").glob("*.sqlite")):
        with sqlite3.connect(db) as con:
            out[db.name] = dict(con.execute("SELECT file_sha256, data FROM features"))
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """The same linear probe fitted by one process and by torchrun with 2 (each with a cold cache of its own)."""
    root = tmp_path_factory.mktemp("sharded")
    data = root / "data"
    write_class_tree(data / "train", {"red": 17, "green": 17, "blue": 17}, size=36)
    write_class_tree(data / "test", {"red": 5, "green": 5, "blue": 5}, size=36, seed=1)
    (data / "train" / "red" / "broken.png").write_bytes(b"not an image")  # skipped alike by both
    out = {"data": data}
    for name, processes in (("one", 1), ("two", 2)):
        out[f"{name}_cache"] = root / f"cache-{name}"
        out[name] = root / name
        tlearn("fit", str(data), "--out", str(out[name]), *PROBE, cache=out[f"{name}_cache"], processes=processes)
    return out


def test_torchrun_linear_probe_equals_one_process_and_fills_the_same_cache(runs):
    one, two = runs["one"], runs["two"]
    for split in ("val", "test"):
        assert (one / "predictions" / f"{split}.csv").read_text() == (two / "predictions" / f"{split}.csv").read_text()
    m1, m2 = (json.loads((r / "metrics.json").read_text()) for r in (one, two))
    assert m1["val"]["accuracy"] == m2["val"]["accuracy"] and m1["test"]["accuracy"] == m2["test"]["accuracy"]
    assert m1["val"]["n"] > 0 and m1["test"]["n"] == 15
    assert [s["path"] for s in m2["skipped"]] == [s["path"] for s in m1["skipped"]]
    assert any(s["path"].endswith("broken.png") for s in m2["skipped"])
    # the same cache files (keys) holding the same bytes: a later single-process run reuses torchrun's features
    rows_one, rows_two = cache_rows(runs["one_cache"]), cache_rows(runs["two_cache"])
    assert rows_one and rows_one == rows_two
    assert sum(len(r) for r in rows_two.values()) == 51 + 15  # the readable train+val images, and test
    assert sorted(p.name for p in two.parent.iterdir()) == ["cache-one", "cache-two", "data", "one", "two"]


def test_torchrun_evaluate_equals_one_process(runs, tmp_path):
    test = str(runs["data"] / "test")
    one = json.loads(tlearn("evaluate", str(runs["one"]), test, "--json", "--batch-size", "4",
                            cache=tmp_path / "c1"))
    two = json.loads(tlearn("evaluate", str(runs["one"]), test, "--json", "--batch-size", "4",
                            cache=tmp_path / "c2", processes=2))
    assert one == two and one["n"] == 15
    assert cache_rows(tmp_path / "c1") == cache_rows(tmp_path / "c2")
