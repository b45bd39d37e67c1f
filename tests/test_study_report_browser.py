"""report.html rendered in headless Chromium: the three plots are drawn, the answers shown, nothing fails to load.

The report is built from hand-made cell records (no training), so this checks the page, not the numbers.
The screenshot is kept in artifacts/study_report.png for a person to look at.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tlearn.study import finish_study

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


def _record(strategy, fraction, seed, acc, curve):
    return {"strategy": strategy, "fraction": fraction, "seed": seed, "n_train": int(245 * fraction),
            "train_seconds": curve[-1][1], "epochs": curve[-1][0], "run": f"cells/{strategy}/f{fraction:g}/seed{seed}",
            "val": {"accuracy": acc, "balanced_accuracy": acc},
            "curve": [{"epoch": e, "seconds": s, "val_accuracy": a} for e, s, a in curve]}


def _study() -> dict:
    cells = []
    for seed, d in ((0, 0.0), (1, 0.03)):
        for f in (0.1, 0.3, 1.0):
            cells += [
                _record("scratch", f, seed, 0.5 + 0.1 * f - d,
                        [(e, 20 * e * f + 5, 0.45 + 0.02 * e * f - d) for e in range(1, 9)]),
                _record("linear-probe", f, seed, 0.85 + 0.08 * f - d, [(1, 6 + 4 * f, 0.85 + 0.08 * f - d)]),
                _record("finetune", f, seed, 0.88 + 0.08 * f - d,
                        [(e, 30 * e * f + 5, 0.8 + 0.03 * e * f - d) for e in range(1, 5)]),
            ]
    return {"config": {"strategies": ["scratch", "linear-probe", "finetune"], "fractions": [0.1, 0.3, 1.0],
                       "seeds": 2},
            "backbone": "efficientnet_lite0",
            "data": {"root": "/data/hymenoptera", "classes": ["ants", "bees"],
                     "counts": {"train": 245, "val": 153, "test": 0}, "val_source": "val split"},
            "metric_split": "val", "cells": cells}


@pytest.fixture(scope="module")
def browser():
    webdriver = pytest.importorskip("selenium.webdriver")
    if not (Path(CHROMIUM).is_file() and Path(CHROMEDRIVER).is_file()):
        pytest.skip("Debian chromium and chromedriver are not installed")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,2000"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=webdriver.ChromeService(executable_path=CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def test_report_renders_in_headless_chromium(tmp_path, browser):
    result = finish_study(tmp_path, _study())
    browser.get(result.report.as_uri())
    plots = browser.execute_script(
        "return Array.from(document.querySelectorAll('img.plot')).map(i => "
        "({name: i.dataset.plot, ok: i.complete && i.naturalWidth > 0, w: i.naturalWidth, h: i.naturalHeight}))")
    assert {p["name"] for p in plots} == {"accuracy_vs_fraction", "accuracy_vs_epoch", "accuracy_vs_seconds"}
    assert all(p["ok"] and p["w"] > 300 and p["h"] > 200 for p in plots), plots
    # self-contained: the page fetched nothing, and the console has no errors
    assert browser.execute_script("return performance.getEntriesByType('resource').length") == 0
    assert [e for e in browser.get_log("browser") if e["level"] == "SEVERE"] == []
    answers = browser.execute_script("return Array.from(document.querySelectorAll('.answer .num'))"
                                     ".map(e => e.textContent)")
    assert len(answers) == 3 and "–" not in answers, answers
    rows = browser.execute_script("return document.querySelectorAll('#results tbody tr').length")
    assert rows == 9
    height = browser.execute_script("return document.body.scrollHeight")
    browser.set_window_size(1280, min(height + 40, 6000))
    ARTIFACTS.mkdir(exist_ok=True)
    assert browser.save_screenshot(str(ARTIFACTS / "study_report.png"))
