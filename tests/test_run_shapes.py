"""The run directories of fit (linear-probe, finetune), distill (+ its student-alone run) and extend (analytic,
lwf) keep the files and the config.yaml / metrics.json keys they had (tests/run_shapes.json); keys may be added."""
from __future__ import annotations

import json

import pytest

from run_shapes import EXPECTED, capture


@pytest.fixture(scope="module")
def shapes(tmp_path_factory) -> dict:
    return capture(tmp_path_factory.mktemp("shapes"))


@pytest.mark.parametrize("kind", ["probe", "finetune", "distill", "extend-analytic", "extend-lwf"])
def test_run_directory_keeps_its_files_and_keys(shapes, kind):
    expected, got = json.loads(EXPECTED.read_text())[kind], shapes[kind]
    assert got["files"] == expected["files"]
    for name in ("config.yaml", "metrics.json"):
        missing = sorted(set(expected[name]) - set(got[name]))
        assert not missing, f"{kind} {name} lost keys: {missing}"


def test_every_run_records_its_phase_seconds(shapes):
    for kind, shape in shapes.items():
        assert "phase_seconds" in shape["metrics.json"], kind
