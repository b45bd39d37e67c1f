"""Reports rendered in headless Chromium: every image loads, no console errors, the main sections are there.

Screenshots go to artifacts/ at the repository root (git-ignored); their paths are printed (pytest -s shows them).
Skipped, not failed, only when Chromium, chromedriver or selenium is absent.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from report_fakes import fake_run, labelled_images
from tlearn.report import write_report

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
SECTIONS = ["summary", "metrics", "per-class", "confusion", "calibration", "errors", "curves", "skipped", "config"]


def _chromium():
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not chromium or not driver:
        pytest.skip("Debian chromium and chromium-driver are not installed")
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-dev-shm-usage", "--window-size=1366,900", "--hide-scrollbars"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(options=options, service=Service(driver))


@pytest.fixture(scope="module")
def browser():
    driver = _chromium()
    yield driver
    driver.quit()


def check_page(browser, page: Path, sections: list[str], screenshot: str) -> dict:
    """Open page; assert images loaded, no console errors, sections present; write a full-page screenshot."""
    browser.set_window_size(1366, 900)
    browser.get(page.resolve().as_uri())
    state = browser.execute_script("""
        const imgs = Array.from(document.images);
        return {complete: imgs.every(i => i.complete), broken: imgs.filter(i => i.naturalWidth === 0).map(i => i.alt),
                count: imgs.length, ids: Array.from(document.querySelectorAll('[id]')).map(e => e.id),
                height: document.documentElement.scrollHeight, width: document.documentElement.scrollWidth};
    """)
    errors = [e for e in browser.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
    assert not errors, errors
    assert state["complete"] and not state["broken"], state["broken"]
    for section in sections:
        assert section in state["ids"], section
    assert state["width"] <= 1366, "the page scrolls sideways on a laptop screen"
    ARTIFACTS.mkdir(exist_ok=True)
    browser.set_window_size(1366, min(state["height"], 12000))
    shot = ARTIFACTS / screenshot
    browser.save_screenshot(str(shot))
    print(f"\nscreenshot: {shot}")
    return state


def test_two_class_report_in_chromium(tmp_path, browser, hymenoptera):
    classes = ["ants", "bees"]
    run = fake_run(tmp_path / "hym", classes, {"val": labelled_images(hymenoptera / "val", classes, 20)},
                   skill=1.0, history_rows=6)
    state = check_page(browser, write_report(run), SECTIONS + ["roc"], "report-browser-two-class.png")
    assert state["count"] >= 4  # calibration, ROC, learning curves and gallery thumbnails


def test_43_class_report_in_chromium(tmp_path, browser):
    classes = [f"{k:05d}" for k in range(43)]
    items = [(tmp_path / "gone.png", k) for k in range(43) for _ in range(4)]
    run = fake_run(tmp_path / "many", classes, {"val": items, "test": items}, skill=2.0)
    check_page(browser, write_report(run), SECTIONS, "report-browser-43-class.png")


def test_compare_page_in_chromium(tmp_path, browser):
    from tlearn.report.compare import compare_runs, write_compare_html

    items = [(tmp_path / "x.png", k % 2) for k in range(20)]
    runs = [fake_run(tmp_path / f"r{i}", ["n", "p"], {"val": items}, seed=i) for i in range(3)]
    check_page(browser, write_compare_html(compare_runs(runs), tmp_path / "cmp.html"), ["compare"],
               "compare-browser.png")
