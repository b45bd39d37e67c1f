"""The web page in headless Debian Chromium: upload a bee photo, see `bees` on top; keep a screenshot."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from export_helpers import Server, exported_onnx

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"


@pytest.fixture(scope="module")
def server(tmp_path_factory, hymenoptera):
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.skip("Debian chromium/chromedriver are not installed")
    base = tmp_path_factory.getbasetemp() / "export-shared"
    base.mkdir(exist_ok=True)
    srv = Server(exported_onnx(base, hymenoptera))
    yield srv
    srv.stop()


def test_page_classifies_an_uploaded_bee(server, hymenoptera):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-dev-shm-usage", "--window-size=900,700"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        driver.get(server.url + "/")
        WebDriverWait(driver, 30).until(lambda d: "classes" in d.find_element(By.ID, "model").text)
        bee = sorted((hymenoptera / "val" / "bees").iterdir())[0]
        driver.find_element(By.ID, "file").send_keys(str(bee))
        WebDriverWait(driver, 60).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#bars .row"))
        rows = driver.find_elements(By.CSS_SELECTOR, "#bars .row")
        assert rows[0].get_attribute("data-label") == "bees"
        assert "time taken" in driver.find_element(By.ID, "timing").text
        assert "hym_run" in driver.find_element(By.ID, "model").text
        ARTIFACTS.mkdir(exist_ok=True)
        driver.save_screenshot(str(ARTIFACTS / "serve_page.png"))
    finally:
        driver.quit()
