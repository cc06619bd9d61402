"""The playground at / in a real headless Chromium: draw a digit, upload one, read the top classes.

Debian's `chromium` and `chromium-driver` drive it through selenium (`make test` installs them
with apt-get when they are missing; nothing is downloaded at run time). The test saves a
screenshot next to its temporary files.
"""

from __future__ import annotations

import base64
import shutil
from pathlib import Path

import httpx
import pytest

from deepstrata import api
from deepstrata.serving.server import open_models, serve_in_thread
from tests.serving.test_server import RECIPE, _digit_png

pytestmark = [pytest.mark.xdist_group("serving"), pytest.mark.e2e]

CHROMIUM, DRIVER = shutil.which("chromium") or "/usr/bin/chromium", shutil.which("chromedriver") or "/usr/bin/chromedriver"


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    if not (Path(CHROMIUM).exists() and Path(DRIVER).exists()):
        pytest.fail("the playground test needs Debian's chromium and chromium-driver: apt-get install -y chromium chromium-driver (make test installs them)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1200,800"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def test_draw_and_upload_a_digit_in_headless_chromium(browser, tmp_path: Path) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    run_dir = api.train({**RECIPE, "name": "playground_cnn", "output_dir": str(tmp_path / "runs")}).run_dir
    with serve_in_thread(open_models([run_dir]), token="t0k") as url:
        browser.get(f"{url}/")
        wait = WebDriverWait(browser, 20)
        status = browser.find_element(By.ID, "status")
        wait.until(lambda d: "token" in status.text)  # without the token the index call is refused, and the page says so
        token = browser.find_element(By.ID, "token")
        token.send_keys("t0k")
        browser.execute_script("arguments[0].dispatchEvent(new Event('change'))", token)
        wait.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-models") == "1")
        pad = browser.find_element(By.ID, "pad")
        # A "7": a bar across the top, then a stroke down to the lower left.
        ActionChains(browser).move_to_element_with_offset(pad, -80, -90).click_and_hold().move_by_offset(150, 0).move_by_offset(-90, 200).release().perform()
        drawn = base64.b64decode(browser.execute_script("return document.getElementById('pad').toDataURL('image/png')").split(",", 1)[1])
        browser.find_element(By.ID, "predict").click()
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#result tr.class-row")) == 3)
        shown = [r.find_element(By.CLASS_NAME, "name").text for r in browser.find_elements(By.CSS_SELECTOR, "#result tr.class-row")]
        # The page shows what the server answers for the very image it drew.
        answer = httpx.post(f"{url}/v2/models/playground_cnn/predict?top_k=3", content=drawn, headers={"Content-Type": "image/png", "Authorization": "Bearer t0k"}).json()
        assert shown == [t["class_name"] for t in answer["predictions"][0]["top_k"]]
        percents = [float(r.find_element(By.CLASS_NAME, "p").text.rstrip("%")) for r in browser.find_elements(By.CSS_SELECTOR, "#result tr.class-row")]
        assert percents == sorted(percents, reverse=True) and 0 < sum(percents) <= 100.2
        # The Grad-CAM overlay of the same image is drawn beside: red where the map is high.
        wait.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-explained") == "grad_cam")
        cam = httpx.post(f"{url}/v2/models/playground_cnn/explain", content=drawn, headers={"Content-Type": "image/png", "Authorization": "Bearer t0k"}).json()
        assert cam["prediction"]["class_name"] == shown[0] and shown[0] in browser.find_element(By.ID, "explained").text
        red = browser.execute_script(
            "const c = document.getElementById('cam'), d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
            "let n = 0; for (let i = 0; i < d.length; i += 4) if (d[i] > d[i + 1] + 40) n++; return n;"
        )
        assert red > 0 and max(cam["map"]) == 1.0
        browser.save_screenshot(str(tmp_path / "playground.png"))
        assert (tmp_path / "playground.png").stat().st_size > 1000
        # Upload: a scikit-learn digit saved as a PNG file.
        png = _digit_png(tmp_path / "upload.png", index=3)
        browser.find_element(By.ID, "clear").click()
        browser.find_element(By.ID, "upload").send_keys(str(png))
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#result tr.class-row")) == 3)
        expected = httpx.post(f"{url}/v2/models/playground_cnn/predict?top_k=3", content=png.read_bytes(), headers={"Content-Type": "image/png", "Authorization": "Bearer t0k"}).json()
        assert browser.find_element(By.TAG_NAME, "body").get_attribute("data-predicted") == expected["predictions"][0]["class_name"]
