"""tlearn.fit's signature is FitConfig's options (names, defaults, types), so IDEs and help() show them and
the two cannot drift; a misspelt option is refused with the closest name."""
from __future__ import annotations

import inspect
import subprocess
import sys
from dataclasses import MISSING, fields

import pytest

import tlearn
from tlearn.api import fit
from tlearn.config import FitConfig
from tlearn.errors import TlearnError
from tlearn.option_names import refuse_unknown


def test_fit_signature_is_fitconfig_s_fields():
    params = inspect.signature(fit).parameters
    options = {name: p for name, p in params.items()
               if p.kind is inspect.Parameter.KEYWORD_ONLY and name != "callbacks"}  # callbacks: objects, not options
    config = {f.name: f for f in fields(FitConfig) if f.name not in ("data", "out")}
    assert list(params)[:2] == ["data", "out"] and set(options) == set(config)
    for name, f in config.items():
        assert options[name].default == f.default and f.default is not MISSING, name
        assert options[name].annotation == f.type, name  # both strings: `from __future__ import annotations`
    assert params["unknown"].kind is inspect.Parameter.VAR_KEYWORD  # only to name the closest option
    assert tlearn.fit is fit


def test_help_lists_every_option_with_its_help():
    doc = inspect.getdoc(fit)
    for f in fields(FitConfig):
        if f.name not in ("data", "out"):
            assert f"\n    {f.name} = {f.default!r}" in doc, f.name
    assert "max gradient norm" in doc


@pytest.mark.parametrize("typo, suggestion", [("epoch", "epochs"), ("backbone_name", "backbone"),
                                              ("learning_rate", None)])
def test_a_misspelt_option_is_refused_with_the_closest_name(typo, suggestion, tmp_path):
    with pytest.raises(TlearnError) as info:
        fit(tmp_path / "data", tmp_path / "out", **{typo: 3})
    message = str(info.value)
    if suggestion:
        assert message == f"unknown option {typo!r} for tlearn.fit; did you mean {suggestion!r}?"
    else:
        assert message.startswith(f"unknown option {typo!r} for tlearn.fit; the options are: ") and "lr," in message
    assert not (tmp_path / "out").exists()


def test_refuse_unknown_names_every_unknown_option():
    with pytest.raises(TlearnError, match="(?s)'seeed'.*'seed'.*'epoch'.*'epochs'"):
        refuse_unknown(["seeed", "epochs", "epoch"], ["seed", "epochs"], "f")
    refuse_unknown(["seed"], ["seed"], "f")


def test_a_bad_value_still_names_the_option(tmp_path):
    with pytest.raises(TlearnError, match="--epochs"):
        fit(tmp_path / "data", tmp_path / "out", epochs=0)


def test_help_on_fit_does_not_import_torch():
    code = "import sys, tlearn, pydoc; pydoc.render_doc(tlearn.fit); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
