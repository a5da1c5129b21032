"""The web page served at `/`, in a real browser: Debian's headless Chromium driven by Selenium
against the server on 127.0.0.1 (uvicorn in a thread, the released detection and sentiment
predictors). It uploads a photo, waits for the boxes and checks what was drawn against what
the JSON API answers for the same photo; types a sentence for sentiment; and sees a server
error in the page's error box. Nothing downloads a browser: the binaries' paths are given, so
Selenium Manager never runs. Set TASKZOO_SCREENSHOT=out.png to keep a screenshot of the boxes.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="needs the serve extra: pip install -e '.[serve]'")
pytest.importorskip("uvicorn", reason="needs the serve extra: pip install -e '.[serve]'")
pytest.importorskip("selenium", reason="no Selenium: pip install selenium")

import httpx  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402
from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

import taskzoo  # noqa: E402

# a coco128 photo of a man on a bench; above conf 0.6 the released detector finds him and
# a few benches (the page's conf option is set to it)
PHOTO = Path("coco128/images/train2017/000000000510.jpg")
CONF = 0.6
WAIT_S = 60  # for one answer in the page (a cold model on a busy 2-core machine)
NO_CHROMIUM = "no Chromium: apt-get install chromium chromium-driver"


def _binary(name: str) -> str | None:
    found = shutil.which(name) or f"/usr/bin/{name}"
    return found if Path(found).is_file() and os.access(found, os.X_OK) else None


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from taskzoo.serve import background, make_app

    with pytest.MonkeyPatch.context() as mp:
        # the private cache conftest gives each test; module-scoped fixtures come before it
        mp.setenv("TASKZOO_HOME", str(tmp_path_factory.getbasetemp() / "taskzoo_home"))
        mp.delenv("TASKZOO_MIRROR", raising=False)
        predictors = {task: taskzoo.load(task, device="cpu") for task in ("detection", "sentiment")}
        with background(make_app(predictors)) as url:
            yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    chromium, driver_path = _binary("chromium"), _binary("chromedriver")
    if not chromium or not driver_path:
        pytest.skip(NO_CHROMIUM)
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--no-proxy-server", "--window-size=1280,1600", "--hide-scrollbars"):
        options.add_argument(arg)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SE_OFFLINE", "true")  # belt and braces: the paths above already skip it
        driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def photo(shared_data: Path) -> Path:
    path = shared_data / PHOTO
    if not path.is_file():
        pytest.skip(f"needs coco128 in the datasets mirror: no {path}")
    return path


def _open(browser: webdriver.Chrome, url: str, task: str) -> None:
    browser.get(url + "/")
    WebDriverWait(browser, 20).until(
        lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "true")
    Select(browser.find_element(By.ID, "task")).select_by_value(task)


def _run(browser: webdriver.Chrome) -> str:
    """Click Run and wait for the answer; the result's final state (done or error)."""
    browser.find_element(By.ID, "run").click()
    result = browser.find_element(By.ID, "result")
    WebDriverWait(browser, WAIT_S).until(
        lambda d: result.get_attribute("data-state") in ("done", "error"))
    return result.get_attribute("data-state")


# a pixel of each side's midpoint of each drawn box, read off the canvas
_EDGE_PIXELS = """
const g = document.getElementById("boxes").getContext("2d");
return Array.from(document.querySelectorAll("#box-list .box")).map((b) => {
  const [x0, y0, x1, y1] = ["xmin", "ymin", "xmax", "ymax"].map((k) => Number(b.dataset[k]));
  const mx = Math.floor((x0 + x1) / 2), my = Math.floor((y0 + y1) / 2);
  return [[x0, my], [x1, my], [mx, y0], [mx, y1]].map(([x, y]) =>
    Array.from(g.getImageData(Math.min(x, g.canvas.width - 1), Math.min(y, g.canvas.height - 1), 1, 1).data));
});
"""
_MEAN_RGB = """
const c = document.getElementById("boxes");
const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
const s = [0, 0, 0];
for (let i = 0; i < d.length; i += 4) { s[0] += d[i]; s[1] += d[i + 1]; s[2] += d[i + 2]; }
return [c.width, c.height, s.map((v) => v / (d.length / 4))];
"""


def _rgb(colour: str) -> tuple[int, int, int]:
    return tuple(int(colour[i:i + 2], 16) for i in (1, 3, 5))  # type: ignore[return-value]


def test_detection_boxes_are_drawn_as_the_api_answers(base_url, browser, photo):
    with photo.open("rb") as f:
        api = httpx.post(f"{base_url}/v1/detection/predict", timeout=WAIT_S,
                         files={"file": (photo.name, f, "image/jpeg")},
                         data={"parameters": json.dumps({"conf": CONF})})
    assert api.status_code == 200, api.text
    expected = api.json()
    assert {"person", "bench"} <= {d["label"] for d in expected}
    assert min(d["score"] for d in expected) >= CONF

    _open(browser, base_url, "detection")
    browser.find_element(By.ID, "file").send_keys(str(photo.resolve()))
    conf = browser.find_element(By.ID, "opt-conf")
    conf.clear()
    conf.send_keys(str(CONF))
    assert _run(browser) == "done", browser.find_element(By.ID, "error").text
    assert browser.find_element(By.ID, "result").get_attribute("data-kind") == "object-detection"

    canvas = browser.find_element(By.CSS_SELECTOR, "canvas#boxes")
    boxes = browser.find_elements(By.CSS_SELECTOR, "#box-list .box")
    assert int(canvas.get_attribute("data-count")) == len(boxes) == len(expected)
    assert [b.get_attribute("data-label") for b in boxes] == [d["label"] for d in expected]
    for b, d in zip(boxes, expected):
        drawn = [float(b.get_attribute(f"data-{k}")) for k in ("xmin", "ymin", "xmax", "ymax")]
        assert np.allclose(drawn, [d["box"][k] for k in ("xmin", "ymin", "xmax", "ymax")], atol=0.51)

    # the photo itself is on the canvas, at its own size ...
    with Image.open(photo) as im:
        size, mean = im.size, np.asarray(im.convert("RGB"), dtype=np.float64).mean(axis=(0, 1))
    width, height, drawn_mean = browser.execute_script(_MEAN_RGB)
    assert (width, height) == size
    assert np.abs(np.array(drawn_mean) - mean).max() < 30
    # ... and every box is stroked in a box colour (edges may cross another box's stroke)
    colours = np.array([_rgb(b.get_attribute("data-colour")) for b in boxes])
    for label, pixels in zip([d["label"] for d in expected], browser.execute_script(_EDGE_PIXELS)):
        rgb = np.array(pixels)[:, None, :3]
        assert (np.abs(rgb - colours[None]).max(axis=2) <= 2).any(), (label, pixels)

    if shot := os.environ.get("TASKZOO_SCREENSHOT"):
        browser.execute_script("document.getElementById('result').scrollIntoView()")
        browser.save_screenshot(shot)


def test_sentiment_typed_in_shows_the_label(base_url, browser):
    text = "a gripping, beautifully acted film that stays with you"
    answer = httpx.post(f"{base_url}/v1/sentiment/predict", json={"inputs": text},
                        timeout=WAIT_S).json()
    expected = answer[0] if isinstance(answer[0], list) else answer  # HF's [[...]] for one text
    _open(browser, base_url, "sentiment")
    browser.find_element(By.ID, "text").send_keys(text)
    assert _run(browser) == "done", browser.find_element(By.ID, "error").text
    assert browser.find_element(By.ID, "label").text == expected[0]["label"] == "positive"
    rows = browser.find_elements(By.CSS_SELECTOR, ".class-row")
    assert [r.get_attribute("data-label") for r in rows] == [d["label"] for d in expected]


def test_a_server_error_is_shown_in_the_error_box(base_url, browser, tmp_path):
    fake = tmp_path / "holiday.jpg"
    fake.write_text("not a picture at all")
    _open(browser, base_url, "detection")
    browser.find_element(By.ID, "file").send_keys(str(fake))
    assert _run(browser) == "error"
    box = browser.find_element(By.ID, "error")
    assert box.is_displayed() and box.text[:1] == "4" and len(box.text) > 8
    # the page keeps working: the task picker and the Run button are usable again
    assert browser.find_element(By.ID, "run").is_enabled()
