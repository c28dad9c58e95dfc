"""REST service: every endpoint and every error, through TestClient; one real uvicorn server.

Most tests inject ``FakeEngine`` (boxes at fixed fractions of the image it is given), so the
geometry of the boxes and the filters can be checked exactly; the others load a random
integer model written by ``facedet.testing.write_random_model`` through the real lifespan.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import struct
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from fastapi.testclient import TestClient

from facedet.anchors import PostProcess
from facedet.detections import Detections
from facedet.testing import free_port
from service.app import create_app
from service.settings import Settings

REPO = Path(__file__).resolve().parent.parent
FACES = REPO / "tests" / "data" / "service" / "faces_640x480.jpg"
FRACTIONS = np.array([[0.1, 0.1, 0.4, 0.5], [0.5, 0.2, 0.9, 0.8], [0.0, 0.0, 0.2, 0.2]], np.float32)
SCORES = np.array([0.9, 0.6, 0.3], np.float32)


class FakeEngine:
    """Three boxes at fixed fractions of whatever image it gets; optionally blocks on an event."""

    info: dict[str, Any] = {
        "name": "fake-net",
        "format_version": 1,
        "file_bytes": 2048,
        "stored_bytes": 1024,
        "input_size": 128,
        "sha256": "0" * 64,
        "metrics": {"fddb_discrete_auc": 0.91},
        "anchors": np.array([[1.0, 2.0]]),
    }

    def __init__(self, block: threading.Event | None = None) -> None:
        self.block = block
        self.started = threading.Event()
        self.shapes: list[tuple[int, ...]] = []

    def detect(self, image_bgr: np.ndarray, post: PostProcess | None = None) -> Detections:
        self.shapes.append(image_bgr.shape)
        self.started.set()
        if self.block is not None:
            self.block.wait(10)
        h, w = image_bgr.shape[:2]
        boxes = FRACTIONS * np.array([w, h, w, h], np.float32)
        return Detections(boxes.astype(np.float32), SCORES.copy())


SMALL = Settings(max_upload_bytes=200_000, max_pixels=2_000_000, max_batch_files=3, max_batch_bytes=400_000)


def encode(ext: str, width: int = 64, height: int = 48) -> bytes:
    ys, xs = np.mgrid[0:height, 0:width]
    image = np.stack([xs * 255 // width, ys * 255 // height, (xs + ys) % 256], axis=-1).astype(np.uint8)
    ok, buf = cv2.imencode(ext, image)
    assert ok
    return buf.tobytes()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose IHDR claims width x height: a decompression bomb as far as the header goes."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


@pytest.fixture
def fake() -> FakeEngine:
    return FakeEngine()


@pytest.fixture
def client(fake: FakeEngine) -> Iterator[TestClient]:
    with TestClient(create_app(SMALL, engine=fake)) as c:
        yield c


@pytest.fixture(scope="module")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from facedet.testing import write_random_model

    return write_random_model(tmp_path_factory.mktemp("model") / "random.fdet", seed=0)


@pytest.fixture(scope="module")
def real_client(model_path: Path) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(model_path=model_path))) as c:
        yield c


def jpeg_file(data: bytes, name: str = "a.jpg") -> dict[str, tuple[str, bytes, str]]:
    return {"file": (name, data, "image/jpeg")}


# ---------------------------------------------------------------------------------------- happy paths


@pytest.mark.parametrize("ext", [".jpg", ".png", ".webp", ".bmp"])
def test_detect_every_format_multipart_and_raw(client: TestClient, ext: str) -> None:
    data = encode(ext, 80, 60)
    for response in (
        client.post("/v1/detect?min_score=0", files={"file": ("x" + ext, data, "application/octet-stream")}),
        client.post("/v1/detect?min_score=0", content=data, headers={"Content-Type": "application/octet-stream"}),
    ):
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["image"] == {"width": 80, "height": 60, "format": ext.strip(".").replace("jpg", "jpeg")}
        assert body["count"] == 3 == len(body["faces"])
        assert body["faces"][0] == {"x": 8.0, "y": 6.0, "width": 24.0, "height": 24.0, "score": 0.9}
        assert body["model"] == {"name": "fake-net", "version": "1", "sha256": "0" * 64}
        assert "scale" not in body and body["inference_ms"] >= 0 and body["total_ms"] >= body["inference_ms"]


def test_min_score_and_max_faces_filter(client: TestClient) -> None:
    data = encode(".png")
    assert client.post("/v1/detect", content=data).json()["count"] == 2  # default min_score 0.5
    assert client.post("/v1/detect?min_score=0.7", content=data).json()["count"] == 1
    body = client.post("/v1/detect?min_score=0&max_faces=2", content=data).json()
    assert [f["score"] for f in body["faces"]] == [0.9, 0.6]


def test_batch(client: TestClient) -> None:
    files = [
        ("files", ("a.png", encode(".png"), "image/png")),
        ("files", ("b.gif", b"GIF89a" + b"\0" * 20, "image/gif")),
        ("files", ("c.jpg", encode(".jpg")[:-200], "image/jpeg")),
    ]
    response = client.post("/v1/detect/batch?min_score=0.5", files=files)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["ok"], body["failed"]) == (1, 2)
    assert [item["status"] for item in body["results"]] == [200, 415, 422]
    assert body["results"][0]["result"]["count"] == 2 and body["results"][0]["filename"] == "a.png"
    assert "gif" in body["results"][1]["error"] and "truncated" in body["results"][2]["error"]


def test_health_ready_model_metrics(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok", "model_loaded": True}
    assert client.get("/readyz").status_code == 200
    info = client.get("/v1/model").json()
    assert info["name"] == "fake-net" and info["stored_bytes"] == 1024 and info["input_size"] == 128
    assert info["metrics"] == {"fddb_discrete_auc": 0.91} and info["extra"] == {"anchors": [[1.0, 2.0]]}
    assert info["limits"]["max_upload_bytes"] == 200_000
    client.post("/v1/detect", content=b"")
    client.post("/v1/detect", content=encode(".png"))
    response = client.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert 'facedet_http_requests_total{route="/v1/detect",method="POST",status="400"} 1' in text
    assert 'facedet_http_requests_total{route="/v1/detect",method="POST",status="200"} 1' in text
    assert 'facedet_http_request_duration_seconds_bucket{route="/v1/detect",method="POST",le="+Inf"} 2' in text
    assert "facedet_inference_seconds_count 1" in text and "facedet_model_loaded 1" in text
    for line in text.splitlines():  # every sample line is "name{labels} value" or "name value"
        assert line.startswith("#") or len(line.rsplit(" ", 1)) == 2 and float(line.rsplit(" ", 1)[1]) >= 0


def test_not_ready_until_loaded(tmp_path: Path) -> None:
    app = create_app(Settings(model_path=tmp_path / "missing.fdet"))  # nothing is loaded by create_app
    client = TestClient(app)  # no lifespan run: the model is not loaded
    assert client.get("/healthz").json() == {"status": "ok", "model_loaded": False}
    assert client.get("/readyz").status_code == 503
    for response in (client.post("/v1/detect", content=encode(".png")), client.get("/v1/model")):
        assert response.status_code == 503 and "not loaded" in response.json()["detail"]
    with pytest.raises(RuntimeError, match="cannot load model"), TestClient(app):
        pass


def test_docs_and_openapi_describe_fields_and_errors(client: TestClient) -> None:
    assert client.get("/docs").status_code == 200
    spec = client.get("/openapi.json").json()
    detect = spec["paths"]["/v1/detect"]["post"]
    for code in ("400", "413", "415", "422", "503"):
        assert detect["responses"][code]["content"]["application/json"]["schema"]["$ref"].endswith("ErrorResponse")
    assert {"multipart/form-data", "image/jpeg"} <= set(detect["requestBody"]["content"])
    assert {p["name"] for p in detect["parameters"]} == {"min_score", "max_faces"}
    assert all(p.get("description") for p in detect["parameters"])
    for name in ("Face", "DetectResponse", "ImageInfo", "ModelRef", "BatchResponse", "BatchItem", "ModelInfo"):
        for field, schema in spec["components"]["schemas"][name]["properties"].items():
            assert schema.get("description"), f"{name}.{field} has no description"
    assert set(spec["paths"]) >= {"/v1/detect", "/v1/detect/batch", "/healthz", "/readyz", "/v1/model", "/metrics"}


def test_browser_page_is_served(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and "getUserMedia" not in page.text and "/static/app.js" in page.text
    script = client.get("/static/app.js")
    assert script.status_code == 200 and "getUserMedia" in script.text


# ---------------------------------------------------------------------------------------------- errors


def assert_error(response: Any, status: int, *words: str) -> None:
    assert response.status_code == status, response.text
    detail = response.json()["detail"]
    assert isinstance(detail, str)
    for word in words:
        assert word in detail, detail


def test_empty_body(client: TestClient) -> None:
    assert_error(client.post("/v1/detect", content=b""), 400, "empty body")
    assert_error(client.post("/v1/detect", files=jpeg_file(b"")), 400, "empty body")


def test_not_an_image_truncated_corrupt(client: TestClient) -> None:
    assert_error(client.post("/v1/detect", content=b"hello, I am text"), 422, "not an image")
    jpg = encode(".jpg")
    assert_error(client.post("/v1/detect", content=jpg[: len(jpg) // 2]), 422, "truncated", "JPEG")
    png = encode(".png")
    assert_error(client.post("/v1/detect", content=png[:-30]), 422, "truncated", "PNG")
    idat = png.find(b"IDAT")
    corrupt = png[: idat + 8] + b"\x00" * (len(png) - idat - 20) + png[-12:]  # zeroed compressed data
    assert_error(client.post("/v1/detect", content=corrupt), 422, "corrupt", "PNG")
    webp = encode(".webp")
    assert_error(client.post("/v1/detect", content=webp[:30] + b"\0" * (len(webp) - 30)), 422, "corrupt", "WEBP")


def test_unsupported_format(client: TestClient) -> None:
    assert_error(client.post("/v1/detect", content=b"GIF89a" + b"\0" * 30), 415, "gif")
    assert_error(client.post("/v1/detect", content=encode(".tiff")), 415, "tiff")
    assert_error(client.post("/v1/detect/batch", content=encode(".png")), 415, "multipart")


def test_raw_body_content_type_is_not_trusted(client: TestClient) -> None:
    # curl --data-binary @face.jpg declares application/x-www-form-urlencoded: the bytes decide.
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    assert client.post("/v1/detect", content=encode(".jpg"), headers=form).status_code == 200
    assert_error(client.post("/v1/detect", data={"file": "x"}), 422, "not an image")
    gif = b"GIF89a" + b"\0" * 30
    assert_error(client.post("/v1/detect", content=gif, headers={"Content-Type": "image/jpeg"}), 415, "gif")


def test_oversized_upload_is_refused_while_reading(client: TestClient, fake: FakeEngine) -> None:
    big = b"\xff\xd8\xff" + b"\0" * 250_000
    assert_error(client.post("/v1/detect", content=big), 413, "Content-Length", "200000")
    assert_error(client.post("/v1/detect", files=jpeg_file(big)), 413, "too large")
    sent = []

    def chunks() -> Iterator[bytes]:  # no Content-Length: chunked transfer, refused mid-stream
        for _ in range(100):
            sent.append(1)
            yield b"\0" * 10_000

    assert_error(client.post("/v1/detect", content=chunks()), 413, "more than 200000 bytes")
    assert not fake.shapes  # nothing reached the engine


def test_decompression_bomb_refused_before_decoding(client: TestClient, fake: FakeEngine) -> None:
    assert_error(client.post("/v1/detect", content=png_header_only(50_000, 50_000)), 413, "2500000000 pixels")
    bomb = cv2.imencode(".png", np.zeros((2000, 2000, 3), np.uint8))[1].tobytes()  # 4 Mpx in ~12 kB
    assert len(bomb) < 50_000
    assert_error(client.post("/v1/detect", content=bomb), 413, "2000x2000", "before decoding")
    assert not fake.shapes


def test_wrong_field_names(client: TestClient) -> None:
    png = encode(".png")
    assert_error(client.post("/v1/detect", files={"image": ("a.png", png)}), 422, "no field named 'file'", "'image'")
    assert_error(client.post("/v1/detect", files={"file": ("a.png", png)}, data={"x": "1"}), 422, "unexpected", "'x'")
    assert_error(client.post("/v1/detect", data={"file": "abc"}, files={"dummy": ("", b"")}), 422)
    two = [("file", ("a.png", png)), ("file", ("b.png", png))]
    assert_error(client.post("/v1/detect", files=two), 422, "exactly one")
    assert_error(client.post("/v1/detect/batch", files={"file": ("a.png", png)}), 422, "'files'")


def test_parameters_out_of_range(client: TestClient) -> None:
    png = encode(".png")
    for query, name in [
        ("min_score=1.5", "min_score"),
        ("min_score=-0.1", "min_score"),
        ("min_score=abc", "min_score"),
        ("max_faces=0", "max_faces"),
        ("max_faces=1001", "max_faces"),
    ]:
        assert_error(client.post(f"/v1/detect?{query}", content=png), 422, f"query parameter '{name}'")
    assert_error(client.post("/v1/detect?minscore=0.3", content=png), 422, "unknown query parameter", "minscore")


def test_batch_limits(client: TestClient) -> None:
    png = encode(".png")
    four = [("files", (f"{i}.png", png, "image/png")) for i in range(4)]
    assert_error(client.post("/v1/detect/batch", files=four), 413, "too many files")
    big = [("files", ("a.png", b"\0" * 300_000, "image/png")), ("files", ("b.png", b"\0" * 300_000, "image/png"))]
    assert_error(client.post("/v1/detect/batch", files=big), 413, "too large")


def test_not_found_and_wrong_method_are_json(client: TestClient) -> None:
    assert_error(client.get("/nope"), 404, "Not Found")
    assert_error(client.get("/v1/detect"), 405, "Method Not Allowed")


def test_saturated_service_answers_503_and_health_stays_fast() -> None:
    release = threading.Event()
    engine = FakeEngine(block=release)
    settings = Settings(max_concurrency=1, max_queue=0)
    with TestClient(create_app(settings, engine=engine)) as client:
        results: list[int] = []
        worker = threading.Thread(
            target=lambda: results.append(client.post("/v1/detect", content=encode(".png")).status_code)
        )
        worker.start()
        try:
            assert engine.started.wait(5)
            busy = client.post("/v1/detect", content=encode(".png"))
            assert_error(busy, 503, "server busy")
            assert_error(client.get("/readyz"), 503, "saturated")  # readiness tells the truth
            assert busy.headers["retry-after"] == "1"
            t0 = time.perf_counter()
            assert client.get("/healthz").status_code == 200
            assert time.perf_counter() - t0 < 1.0  # the event loop is not blocked by the detection
            assert "facedet_rejected_busy_total 1" in client.get("/metrics").text
        finally:
            release.set()
            worker.join(10)
        assert results == [200]
        assert client.post("/v1/detect", content=encode(".png")).status_code == 200  # slot released


# ----------------------------------------------------------------------------------- the real engine


def test_crafted_model_refuses_to_start(model_path: Path, tmp_path: Path) -> None:
    from facedet.model_file import encode_model_file, read_model_file

    manifest, arrays = read_model_file(model_path)
    manifest.pop("arrays")
    manifest["layers"][1]["pool"] = "avg9"  # a pool the engine does not know
    crafted = tmp_path / "crafted.fdet"
    crafted.write_bytes(encode_model_file(manifest, arrays))
    with pytest.raises(RuntimeError, match=r"cannot load model: .*crafted\.fdet: .*'pool' must be one of"):
        with TestClient(create_app(Settings(model_path=crafted))):
            pass


def test_real_engine_through_lifespan(real_client: TestClient, model_path: Path) -> None:
    assert real_client.get("/readyz").status_code == 200
    info = real_client.get("/v1/model").json()
    assert info["file"] == model_path.name and info["stored_bytes"] > 0 and len(info["sha256"]) == 64
    assert info["version"].endswith("+" + info["sha256"][:8])  # the model file's version
    body = real_client.post("/v1/detect?min_score=0&max_faces=5", content=FACES.read_bytes()).json()
    assert body["image"] == {"width": 640, "height": 480, "format": "jpeg"}
    assert 1 <= body["count"] <= 5 and body["model"]["name"] == info["name"]
    for face in body["faces"]:
        assert 0 <= face["x"] and face["x"] + face["width"] <= 640.01
        assert 0 <= face["y"] and face["y"] + face["height"] <= 480.01
    # max_side is gone (the engine letterboxes to its input size anyway): an unknown parameter now.
    gone = real_client.post("/v1/detect?max_side=320", content=FACES.read_bytes())
    assert gone.status_code == 422 and "max_side" in gone.json()["detail"]


def test_real_server_over_http(model_path: Path, tmp_path: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "FACEDET_MODEL": str(model_path),
        "FACEDET_MAX_UPLOAD_BYTES": "100000",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    cmd = [sys.executable, "-m", "uvicorn", "service.app:create_app", "--factory", "--port", str(port)]
    log = (tmp_path / "server.log").open("w")
    server = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120  # generous for a loaded 2-core box; polling keeps idle runs fast
        while True:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                conn.request("GET", "/readyz")
                if conn.getresponse().status == 200:
                    break
            except OSError:
                pass
            assert server.poll() is None, (tmp_path / "server.log").read_text()
            assert time.monotonic() < deadline, "server did not become ready"
            time.sleep(0.1)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("POST", "/v1/detect?min_score=0&max_faces=3", body=FACES.read_bytes())
        response = conn.getresponse()
        body = json.loads(response.read())
        assert response.status == 200 and body["image"]["width"] == 640 and 1 <= body["count"] <= 3
        conn.request("GET", "/healthz")
        assert json.loads(conn.getresponse().read())["status"] == "ok"
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("POST", "/v1/detect", body=b"\xff\xd8\xff" + b"\0" * 150_000)
        response = conn.getresponse()
        assert response.status == 413 and "too large" in json.loads(response.read())["detail"]
        assert chunked_upload_refused_early(port)
    finally:
        server.terminate()
        server.wait(10)
        log.close()


def chunked_upload_refused_early(port: int) -> bool:
    """Stream a 5 MB chunked body; the 413 must arrive long before the body is all sent."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"POST /v1/detect HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        chunk = b"\xff\xd8\xff" + b"\0" * 9_997
        sent = 0
        try:
            for _ in range(500):
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                sent += len(chunk)
                sock.settimeout(0.005)
                try:
                    head = sock.recv(65536)
                except TimeoutError:
                    continue
                finally:
                    sock.settimeout(10)
                break
        except (BrokenPipeError, ConnectionResetError):
            head = sock.recv(65536)
        assert head.startswith(b"HTTP/1.1 413"), head[:200]
        return sent < 1_000_000


def test_nan_min_score_and_oversized_batches_have_accurate_messages(client: TestClient) -> None:
    assert_error(client.post("/v1/detect?min_score=nan", content=encode(".png")), 422, "finite number")
    one = ("files", ("a.png", b"x", "image/png"))
    for count in (4, 1000):  # SMALL allows 3: one over and far over get the same answer
        assert_error(client.post("/v1/detect/batch", files=[one] * count), 413, "at most 3 images")


def test_pixel_budget_bounds_decoded_pixels_held_at_once() -> None:
    from service.state import PixelBudget

    budget = PixelBudget(100)
    peak: list[int] = []

    def work(pixels: int) -> None:
        with budget.hold(pixels):
            peak.append(budget.used)
            time.sleep(0.02)

    threads = [threading.Thread(target=work, args=(60,)) for _ in range(4)]
    threads.append(threading.Thread(target=work, args=(10**6,)))  # larger than the budget: clamped, still runs
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)
    assert len(peak) == 5 and max(peak) <= 100 and budget.used == 0


@pytest.mark.parametrize(
    "params", [[], [cv2.IMWRITE_JPEG_PROGRESSIVE, 1], [cv2.IMWRITE_JPEG_RST_INTERVAL, 4]], ids=["base", "prog", "rst"]
)
def test_damaged_jpeg_scan_is_422_and_intact_ones_pass(client: TestClient, params: list[int]) -> None:
    image = cv2.imdecode(np.frombuffer(FACES.read_bytes(), np.uint8), cv2.IMREAD_COLOR)
    good = cv2.imencode(".jpg", image, params)[1].tobytes()
    assert client.post("/v1/detect", content=good).status_code == 200
    damaged = bytearray(good)
    middle = len(good) // 2
    damaged[middle : middle + 8] = b"\xff\x17\x00\x42\xff\xc0\x13\x37"  # an impossible marker inside the scan
    assert_error(client.post("/v1/detect", content=bytes(damaged)), 422, "damaged JPEG image")


def test_docs_work_offline(client: TestClient) -> None:
    """/docs and /redoc load their JavaScript and CSS from the service itself, never from a CDN."""
    import re

    for page in ("/docs", "/redoc"):
        html = client.get(page).text
        assert not re.search(r"(src|href)=['\"]https?://", html), f"{page} loads from the network"
        assets = re.findall(r"(?:src|href)=['\"](/[^'\"]+\.(?:js|css))['\"]", html)
        assert assets, html
        for asset in assets:
            response = client.get(asset)
            assert response.status_code == 200 and len(response.content) > 10_000, asset
