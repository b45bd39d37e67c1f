"""The command line's conventions: help without torch and with every default, --version, -q after the command,
--json wherever a result is printed, older option spellings still working (with one warning), and each
default declared once (the strategies', doctor's, the training loop's)."""
from __future__ import annotations

import argparse
import re
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest

from tlearn.cli import COMMANDS, build_parser, main
from tlearn.commands import options as cli_options
from tlearn.commands.options import HelpFormatter

REPO = Path(__file__).resolve().parents[1]
PRINTS_NO_RESULT = {"serve"}  # a server: it answers requests, it prints no result


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_help_of_every_command_imports_no_torch():
    # a fresh interpreter: this test process may have imported torch already
    code = ("import sys\nfrom tlearn.cli import build_parser, COMMANDS\n"
            "p = build_parser()\np.format_help()\n"
            "sub = next(a for a in p._actions if a.__class__.__name__ == '_SubParsersAction')\n"
            "for name in COMMANDS: sub.choices[name].format_help()\n"
            "heavy = sorted(m for m in ('torch', 'torchvision', 'timm', 'sklearn') if m in sys.modules)\n"
            "print(','.join(heavy) or 'none')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO,
                         env={"PYTHONPATH": str(REPO), "PATH": ""}).stdout.strip()
    assert out == "none"


def test_python_m_tlearn_help_runs_and_lists_every_command():
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "tlearn", "--help"], capture_output=True,
                          text=True, cwd=REPO, env={"PYTHONPATH": str(REPO), "PATH": ""})
    assert proc.returncode == 0 and all(name in proc.stdout for name in COMMANDS)
    imported = {line.split("|")[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time")}
    assert "torch" not in imported and "tlearn.cli" in imported


@pytest.mark.parametrize("name", COMMANDS)
def test_every_option_with_a_default_shows_it_in_help(name):
    parser = _subparsers(build_parser(only=name))[name]
    formatter = HelpFormatter(prog="tlearn")
    for action in parser._actions:
        default = action.default
        if (not action.option_strings or action.nargs == 0 or default is None or isinstance(default, bool)
                or default == argparse.SUPPRESS):
            continue
        text = formatter._get_help_string(action)
        assert "default" in text, f"{name} {action.option_strings[0]}: help does not show its default"


@pytest.mark.parametrize("name", COMMANDS)
def test_help_strings_do_not_write_a_default_by_hand(name):
    # the formatter adds "(default: X)" from the declaration; the value written into the help too would drift
    parser = _subparsers(build_parser(only=name))[name]
    for action in parser._actions:
        if isinstance(action.default, (int, float)) and not isinstance(action.default, bool):
            written = re.search(rf"default:? {re.escape(str(action.default))}(?![\d.])", action.help or "")
            assert not written, (name, action.option_strings, action.help)


@pytest.mark.parametrize("name", sorted(set(COMMANDS) - PRINTS_NO_RESULT))
def test_every_command_that_prints_a_result_takes_json(name):
    parser = _subparsers(build_parser(only=name))[name]
    assert "--json" in parser._option_string_actions


def test_version(capsys):
    from tlearn._version import __version__

    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out.strip() == f"tlearn {__version__}"


def test_quiet_before_or_after_the_command():
    for argv in (["-q", "doctor", "d"], ["doctor", "d", "-q"], ["doctor", "-q", "d"]):
        assert build_parser(only="doctor").parse_args(argv).quiet is True
    assert build_parser(only="doctor").parse_args(["doctor", "d"]).quiet is False


def test_explain_out_is_required_in_the_help():
    usage = _subparsers(build_parser(only="explain"))["explain"].format_usage()
    assert "--out DIR" in usage and "[--out DIR]" not in usage


# (command, older spelling, current spelling): both parse to the same values
RENAMED = [
    ("rank", ["--sources", "a,b"], ["--rank-sources", "a,b"]),
    ("rank", ["--metric", "leep"], ["--rank-metric", "leep"]),
    ("rank", ["--verify", "probe"], ["--verify-probe"]),
    ("doctor", ["--strict"], ["--fail-on-leakage"]),
    ("fit", ["--class-weights", "auto"], ["--balanced-loss"]),
    ("fit", ["--sampler", "balanced"], ["--balanced-sampler"]),
    ("extend", ["--sampler", "balanced"], ["--balanced-sampler"]),
    ("distill", ["--student-size", "64"], ["--image-size", "64"]),
    ("incremental", ["--recipe", "train-bn"], ["--finetune-recipe", "train-bn"]),
    ("export", ["--quantize", "int8"], ["--int8"]),
]
POSITIONALS = {"rank": ["d"], "doctor": ["d"], "fit": ["d", "--out", "o"], "extend": ["r", "d", "--out", "o"],
               "distill": ["d", "--teacher", "t", "--out", "o"], "incremental": ["d", "--out", "o"], "export": ["r"]}


@pytest.mark.parametrize("command, old, new", RENAMED, ids=[f"{c} {o[0]}" for c, o, _ in RENAMED])
def test_an_older_spelling_still_works_and_warns_once(command, old, new, capsys, monkeypatch):
    monkeypatch.setattr(cli_options, "_warned", set())
    base = [command, *POSITIONALS[command]]
    current = vars(build_parser(only=command).parse_args([*base, *new]))
    assert capsys.readouterr().err == ""
    older = vars(build_parser(only=command).parse_args([*base, *old, *old]))  # given twice: one warning
    assert older == current
    err = capsys.readouterr().err
    assert err.count("deprecated") == 1 and old[0] in err and new[0] in err
    # hidden from --help, which shows the current name only
    help_text = _subparsers(build_parser(only=command))[command].format_help()
    assert new[0] in help_text and not re.search(rf"(?<![\w-]){re.escape(old[0])}(?![\w-])", help_text)


def test_incremental_takes_method_as_extend_does():
    a = build_parser(only="incremental").parse_args(["incremental", "d", "--out", "o", "--method", "analytic"])
    assert a.methods == "analytic"


def test_strategy_defaults_are_declared_once_and_quoted_by_fit_help():
    from tlearn.strategies.finetune import FineTune, Gradual, LinearProbeThenFineTune, Scratch
    from tlearn.strategy_defaults import LOOP, STRATEGY_DEFAULTS
    from tlearn.train.options import TrainOptions

    for cls in (FineTune, Gradual, LinearProbeThenFineTune, Scratch):
        assert cls.defaults is STRATEGY_DEFAULTS[cls.name]
        assert FineTune.default_lr == STRATEGY_DEFAULTS["finetune"].lr  # the older attribute mirrors the row
    loop = TrainOptions()
    assert (loop.optimizer, loop.augment, loop.label_smoothing, loop.freeze_bn, loop.l2_sp) == \
        (LOOP.optimizer, LOOP.augment, LOOP.label_smoothing, LOOP.freeze_bn, LOOP.l2_sp)
    text = _subparsers(build_parser(only="fit"))["fit"].format_help()
    text = " ".join(text.split())
    epochs = ", ".join(f"{name} {d.epochs}" for name, d in STRATEGY_DEFAULTS.items())
    assert f"(default: {epochs})" in text


def test_a_strategy_resolves_unset_options_from_its_row_and_the_users_win():
    from tlearn.config import FitConfig
    from tlearn.strategies.finetune import FineTune
    from tlearn.strategy_defaults import STRATEGY_DEFAULTS

    row = STRATEGY_DEFAULTS["finetune"]
    hp = FineTune(FitConfig(data="d", out="o", strategy="finetune")).hyperparameters
    assert hp["lr"] == row.lr and hp["epochs"] == row.epochs and hp["optimizer"] == row.optimizer
    hp = FineTune(FitConfig(data="d", out="o", strategy="finetune", lr=0.5, label_smoothing=0.0,
                            freeze_bn=False)).hyperparameters
    assert hp["lr"] == 0.5 and hp["label_smoothing"] == 0.0 and hp["freeze_bn"] is False


def test_doctor_defaults_are_its_configs():
    import inspect

    from tlearn.doctor import DoctorConfig, diagnose

    names = {"ranking": "rank_by"}
    defaults = {f.name: f.default for f in fields(DoctorConfig)}
    for name, p in inspect.signature(diagnose).parameters.items():
        if p.default is not inspect.Parameter.empty:
            assert p.default == defaults[names.get(name, name)], name


def test_shared_options_have_one_default():
    from tlearn.config import RunOptions
    from tlearn.doctor import DoctorConfig
    from tlearn.incremental.config import IncrementalConfig
    from tlearn.rank.config import RankConfig

    shared = {f.name: f.default for f in fields(RunOptions)}
    for config in (DoctorConfig, IncrementalConfig, RankConfig):
        for f in fields(config):
            if f.name in ("val_fraction", "batch_size", "precision", "device", "num_workers", "progress"):
                assert f.default == shared[f.name], (config.__name__, f.name)
