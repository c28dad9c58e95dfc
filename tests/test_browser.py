"""The browser demo in real headless Chromium: fake webcam (a .y4m made from a face image) -> service -> boxes.

Needs Debian's ``chromium`` and ``chromium-driver`` (``scripts/ci_system_deps.sh`` installs them)
and the ``selenium`` package; skipped with the reason when any is missing. The service runs the
shipped default model (what a user gets). The tests check that the page drew exactly the boxes
the service returned, that green box pixels are on the canvas, and, for an uploaded image with
known face positions (tests/data/service/README.md), that a drawn box lies on each face where the
page shows it (the overlay canvas must sit exactly on the image).
"""

from __future__ import annotations

import http.client
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from facedet.testing import free_port

REPO = Path(__file__).resolve().parent.parent
FACES = REPO / "tests" / "data" / "service" / "faces_640x480.jpg"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install selenium)")
if not (os.path.isfile(CHROMIUM) and os.path.isfile(CHROMEDRIVER)):
    pytest.skip("chromium / chromium-driver not installed (run scripts/ci_system_deps.sh)", allow_module_level=True)

from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402


def write_y4m(path: Path, image: np.ndarray, frames: int = 10, fps: int = 10) -> Path:
    """An uncompressed YUV4MPEG2 (4:2:0) video of ``image`` drifting sideways: Chromium's fake webcam."""
    height, width = image.shape[:2]
    with path.open("wb") as f:
        f.write(f"YUV4MPEG2 W{width} H{height} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for i in range(frames):
            frame = np.roll(image, 2 * i, axis=1)
            f.write(b"FRAME\n")
            f.write(cv2.cvtColor(frame, cv2.COLOR_BGR2YUV_I420).tobytes())  # Y plane, then U, then V
    return path


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("browser")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "FACEDET_MODEL"} | {
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    }
    cmd = [sys.executable, "-m", "uvicorn", "service.app:create_app", "--factory", "--port", str(port)]
    log = (tmp / "server.log").open("w")
    process = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120  # generous for a loaded 2-core box; polling keeps idle runs fast
        while True:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                conn.request("GET", "/readyz")
                if conn.getresponse().status == 200:
                    break
            except OSError:
                pass
            assert process.poll() is None, (tmp / "server.log").read_text()
            assert time.monotonic() < deadline, "server did not become ready"
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(10)
        log.close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[webdriver.Chrome]:
    tmp = tmp_path_factory.mktemp("chromium")
    video = write_y4m(tmp / "faces.y4m", cv2.imread(str(FACES)))
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-video-capture={video}",
        f"--user-data-dir={tmp / 'profile'}",
        "--window-size=1024,900",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


GREEN_PIXELS_JS = """
const c = document.getElementById('overlay');
const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
let n = 0;
for (let i = 0; i < d.length; i += 4) { if (d[i] < 40 && d[i + 1] > 200 && d[i + 2] < 40 && d[i + 3] > 200) n++; }
return [c.width, c.height, n];
"""


def body_data(driver: webdriver.Chrome, name: str) -> str:
    return str(driver.find_element(By.TAG_NAME, "body").get_attribute(f"data-{name}"))


def test_webcam_frames_get_boxes_drawn(server: str, browser: webdriver.Chrome) -> None:
    browser.get(f"{server}/?min_score=0&max_faces=5&autostart=1")
    try:
        WebDriverWait(browser, 30).until(lambda d: int(body_data(d, "frames")) >= 3)
    except Exception:
        pytest.fail(f"no frames drawn; status: {browser.find_element(By.ID, 'status').text!r}")
    assert body_data(browser, "state") == "camera"
    last = browser.execute_script("return window.facedetLast;")
    drawn = int(body_data(browser, "drawn-boxes"))
    assert last["image"]["width"] == 640 and last["image"]["height"] == 480  # the fake webcam's frames
    assert 1 <= drawn <= 5 and drawn == int(body_data(browser, "last-count"))
    width, height, green = browser.execute_script(GREEN_PIXELS_JS)
    assert (width, height) == (640, 480) and green > 50, "no box pixels on the overlay canvas"
    fps = browser.find_element(By.ID, "fps").text
    latency = browser.find_element(By.ID, "latency").text
    assert float(fps) > 0 and float(latency) > 0


def test_chosen_image_file_gets_boxes_drawn(server: str, browser: webdriver.Chrome) -> None:
    browser.get(f"{server}/?min_score=0&max_faces=3")
    browser.find_element(By.ID, "file-input").send_keys(str(FACES))
    WebDriverWait(browser, 20).until(lambda d: body_data(d, "state") == "image" and int(body_data(d, "frames")) >= 1)
    assert 1 <= int(body_data(browser, "drawn-boxes")) <= 3
    assert browser.execute_script(GREEN_PIXELS_JS)[2] > 50


FACE_BOXES = [(101, 124, 234, 257), (458, 159, 550, 251)]  # x1, y1, x2, y2 in faces_640x480.jpg

LAYOUT_JS = """
const img = document.getElementById('still'), c = document.getElementById('overlay');
const ir = img.getBoundingClientRect(), cr = c.getBoundingClientRect();
return {image: [ir.left, ir.top, ir.width / img.naturalWidth, ir.height / img.naturalHeight],
        canvas: [cr.left, cr.top, cr.width / c.width, cr.height / c.height],
        faces: window.facedetLast.faces};
"""


def test_uploaded_image_boxes_lie_on_the_faces(server: str, browser: webdriver.Chrome) -> None:
    browser.get(f"{server}/?min_score=0.5")
    browser.find_element(By.ID, "file-input").send_keys(str(FACES))
    WebDriverWait(browser, 20).until(lambda d: body_data(d, "state") == "image" and int(body_data(d, "frames")) >= 1)
    layout = browser.execute_script(LAYOUT_JS)
    (il, it, isx, isy), (cl, ct, csx, csy) = layout["image"], layout["canvas"]
    assert abs(il - cl) < 1 and abs(it - ct) < 1, f"overlay at {cl, ct}, image at {il, it}"
    # Where the page shows each drawn box's centre, and each known face, in CSS pixels.
    centres = [(cl + (f["x"] + f["width"] / 2) * csx, ct + (f["y"] + f["height"] / 2) * csy) for f in layout["faces"]]
    for x1, y1, x2, y2 in FACE_BOXES:
        face = (il + x1 * isx, it + y1 * isy, il + x2 * isx, it + y2 * isy)
        assert any(face[0] <= x <= face[2] and face[1] <= y <= face[3] for x, y in centres), (face, centres)


def test_api_docs_render_from_local_assets(server: str, browser: webdriver.Chrome) -> None:
    """Swagger UI draws the API from assets the service serves itself (no CDN: works air-gapped)."""
    browser.get(f"{server}/docs")
    WebDriverWait(browser, 20).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".swagger-ui .info .title"))
    assert "facedet" in browser.find_element(By.CSS_SELECTOR, ".swagger-ui .info .title").text
    assert browser.find_elements(By.CSS_SELECTOR, ".opblock-summary-path[data-path='/v1/detect']")
    scripts = browser.execute_script("return [...document.scripts].map(s => s.src).filter(Boolean);")
    assert scripts and all(src.startswith(server) for src in scripts), scripts
