"""Packaging: tlearn declares its licence and dependency ranges (so that it installs beside a user's own torch and
numpy), and constraints.txt pins the exact tested version of every package it names."""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _requirements() -> list[tuple[str, Requirement]]:
    """(where, requirement) for the core dependencies and every extra."""
    out = [("dependencies", Requirement(r)) for r in PROJECT["dependencies"]]
    for extra, reqs in PROJECT.get("optional-dependencies", {}).items():
        out += [(f"[{extra}]", Requirement(r)) for r in reqs]
    return out


def test_licence_is_declared_and_shipped():
    assert PROJECT["license"] == "Apache-2.0"
    assert PROJECT["license-files"] == ["LICENSE"]
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text and "END OF TERMS AND CONDITIONS" in text
    assert "the tlearn authors" in text.splitlines()[0]


def test_every_dependency_is_a_range_with_both_bounds():
    """A library declares ranges; exact pins would make pip replace the user's torch or numpy."""
    bad = []
    for where, req in _requirements():
        ops = {s.operator for s in req.specifier}
        if "==" in ops or "===" in ops or not ({">=", ">"} & ops) or not ({"<", "<="} & ops):
            bad.append(f"{where}: {req} (want a range like 'torch>=2.5,<3')")
    assert not bad, "\n".join(bad)


def test_constraints_pin_every_declared_package():
    """constraints.txt is the tested set: one exact version for each package pyproject names."""
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version and re.fullmatch(r"[\w.+!-]+", version), f"constraints.txt: {line!r} is not NAME==VERSION"
            pins[canonicalize_name(name)] = version
    missing, outside = [], []
    for where, req in _requirements():
        version = pins.get(canonicalize_name(req.name))
        if version is None:
            missing.append(f"{where}: {req.name}")
        elif not req.specifier.contains(version, prereleases=True):
            outside.append(f"{where}: {req} excludes the tested {req.name}=={version}")
    assert not missing, "add the tested version to constraints.txt: " + ", ".join(missing)
    assert not outside, "\n".join(outside)
    assert "tlearn" not in pins, "constraints.txt must not pin tlearn itself"
