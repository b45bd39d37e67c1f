"""doctor.html in headless Chromium: images load, no console errors, the sections are there; a screenshot is saved
to artifacts/doctor-browser.png. Skipped, not failed, when Chromium, chromedriver or selenium is absent."""
from __future__ import annotations

import pytest

from test_doctor import FAST, planted_set
from test_report_browser import _chromium, check_page
from tlearn.doctor import diagnose, write_doctor

SECTIONS = ["summary", "duplicates", "label-issues", "outliers", "classes", "files", "skipped", "settings"]


@pytest.fixture(scope="module")
def browser():
    driver = _chromium()
    yield driver
    driver.quit()


def test_doctor_page_in_chromium(tmp_path, browser):
    report = diagnose(planted_set(tmp_path / "data"), cache_dir=str(tmp_path / "cache"), **FAST)
    html, _ = write_doctor(report, tmp_path / "out")
    state = check_page(browser, html, SECTIONS, "doctor-browser.png")
    assert state["count"] >= 8  # duplicate groups, the label issue and the odd strip, each with thumbnails
