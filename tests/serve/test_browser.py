"""The web page and the sweep report in headless Chromium (Debian's ``chromium`` + ``chromium-driver``).

Selenium drives the system browser (/usr/bin/chromium through /usr/bin/chromedriver); nothing is
downloaded (``$PIPELINE_CHROMIUM`` names another browser binary). The tests skip, saying why, when either
is missing. Screenshots are saved under the test's tmp dir, or under ``$PIPELINE_SCREENSHOT_DIR`` when set
(to look at them).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("PIPELINE_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--window-size=1280,1600"]


def _why_no_browser() -> str | None:
    if not os.access(CHROMIUM, os.X_OK):
        return f"no chromium at {CHROMIUM} (apt-get install chromium chromium-driver)"
    if not os.access(CHROMEDRIVER, os.X_OK):
        return f"no chromedriver at {CHROMEDRIVER} (apt-get install chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[test]')"
    return None


pytestmark = [pytest.mark.slow, pytest.mark.skipif(_why_no_browser() is not None, reason=str(_why_no_browser()))]


@pytest.fixture
def browser(tmp_path) -> Iterator:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in [*FLAGS, f"--user-data-dir={tmp_path / 'chromium-profile'}"]:
        opts.add_argument(flag)
    driver = webdriver.Chrome(options=opts, service=Service(executable_path=CHROMEDRIVER))
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def screenshot(driver, tmp_path: Path, name: str) -> Path:
    folder = Path(os.environ.get("PIPELINE_SCREENSHOT_DIR") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1280, min(int(height) + 140, 6000))  # the whole page, not just the first screen
    assert driver.save_screenshot(str(path))
    return path


def assert_not_blank(png: Path) -> None:
    """Many distinct colours and some spread: a page was drawn, not a white (or black) canvas."""
    from matplotlib.image import imread

    pixels = imread(png)[..., :3].reshape(-1, 3)
    assert pixels.std() > 0.05, f"{png} looks blank"
    assert len({tuple(p) for p in pixels[:: max(1, len(pixels) // 20000)].round(2)}) > 20, f"{png} looks blank"


def wait(driver, condition, timeout: float = 60):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(condition)


def test_page_shows_a_label_for_a_typed_text(browser, server, tmp_path):
    from selenium.webdriver.common.by import By

    browser.get(server + "/")
    wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, ".metric"))  # /model answered
    assert "tiny" in browser.find_element(By.ID, "model-name").text
    assert "val accuracy" in browser.find_element(By.ID, "metrics").text
    browser.find_element(By.ID, "text").send_keys("Shares in the bank rose 5% after it reported record profits.")
    browser.find_element(By.ID, "classify").click()
    wait(browser, lambda d: d.find_element(By.ID, "label").text.strip())
    import json
    import urllib.request

    labels = json.loads(urllib.request.urlopen(server + "/model", timeout=30).read())["labels"]
    shown = browser.find_element(By.ID, "label").text.split()[0]
    assert shown in labels
    bars = browser.find_elements(By.CSS_SELECTOR, "#bars .bar")
    assert sorted(b.get_attribute("data-label") for b in bars) == sorted(labels)
    assert bars[0].get_attribute("data-label") == shown  # sorted by probability, the label first
    assert browser.find_element(By.ID, "error").text == ""
    browser.execute_script("return new Promise(r => setTimeout(r, 400))")  # the bars' width transition
    assert_not_blank(screenshot(browser, tmp_path, "serve_page.png"))


def test_page_says_what_is_wrong_with_an_empty_text(browser, server):
    from selenium.webdriver.common.by import By

    browser.get(server + "/")
    browser.find_element(By.ID, "classify").click()
    assert "text" in wait(browser, lambda d: d.find_element(By.ID, "error").text)
    assert browser.find_element(By.ID, "result").get_attribute("hidden") is not None


def test_report_table_has_one_row_per_run_and_sorts(browser, tiny_sweep, tmp_path):
    from selenium.webdriver.common.by import By

    report = tiny_sweep / "results" / "report.html"
    browser.get(report.as_uri())
    rows = browser.find_elements(By.CSS_SELECTOR, "#runs tbody tr")
    runs = sorted(p.name for p in tiny_sweep.iterdir() if p.name.isdigit())
    assert sorted(r.find_elements(By.TAG_NAME, "td")[1].text for r in rows) == runs
    assert len(browser.find_elements(By.CSS_SELECTOR, "#confusion tbody tr")) >= 2
    assert "CUDA out of memory" in browser.find_element(By.CSS_SELECTOR, "details.failure pre").text
    images = browser.find_elements(By.CSS_SELECTOR, ".plots img")
    assert len(images) == 2 and all(browser.execute_script("return arguments[0].naturalWidth", i) > 100
                                    for i in images)

    heads = browser.find_elements(By.CSS_SELECTOR, "#runs thead th")
    job_col = [h.text for h in heads].index("job")
    heads[job_col].click()  # ascending
    heads[job_col].click()  # descending
    jobs = [r.find_elements(By.TAG_NAME, "td")[job_col].text for r in
            browser.find_elements(By.CSS_SELECTOR, "#runs tbody tr")]
    assert jobs == sorted(runs, key=int, reverse=True)
    assert_not_blank(screenshot(browser, tmp_path, "report.png"))
