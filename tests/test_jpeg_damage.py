"""Damaged JPEGs are refused (issue 14 item 8): libjpeg's own warnings, or the structural scan without them.

libjpeg only warns about damaged entropy-coded data and hands back garbled pixels. The corrupt files
are made here from images encoded with cv2.imencode (baseline, progressive, with restart markers):
cut short, overwritten, bytes spliced in, bits flipped (fixed seeds). Tests of ``facedet._jpegcheck``
skip when it is not built; the fallback (``facedet.jpeg_scan``) is tested with the extension hidden.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from fastapi.testclient import TestClient

from facedet import jpeg_check
from facedet.jpeg_check import jpeg_damage, libjpeg_check_built
from facedet.jpeg_scan import jpeg_frame, structural_damage
from facedet.media import decode_image, image_damage, read_image

REPO = Path(__file__).resolve().parent.parent
FACES = REPO / "tests" / "data" / "service" / "faces_640x480.jpg"
ENCODINGS = {
    "baseline": [cv2.IMWRITE_JPEG_QUALITY, 85],
    "progressive": [cv2.IMWRITE_JPEG_QUALITY, 85, cv2.IMWRITE_JPEG_PROGRESSIVE, 1],
    "restart": [cv2.IMWRITE_JPEG_QUALITY, 85, cv2.IMWRITE_JPEG_RST_INTERVAL, 4],
}
needs_libjpeg = pytest.mark.skipif(
    not libjpeg_check_built(),
    reason="facedet._jpegcheck is not built (needs the libjpeg headers, e.g. libjpeg62-turbo-dev, "
    "at `pip install -e .` or `python setup.py build_ext --inplace`)",
)


def encode(kind: str) -> bytes:
    image = cv2.imdecode(np.frombuffer(FACES.read_bytes(), np.uint8), cv2.IMREAD_COLOR)
    ok, buffer = cv2.imencode(".jpg", image, ENCODINGS[kind])
    assert ok
    return buffer.tobytes()


def scan_range(data: bytes) -> tuple[int, int]:
    """(first entropy-coded byte, offset of the end-of-image marker)."""
    return jpeg_frame(data).scan_start, data.rfind(b"\xff\xd9")


def middle(data: bytes) -> int:
    start, end = scan_range(data)
    return (start + end) // 2


def overwritten(data: bytes, count: int, seed: int) -> list[bytes]:
    """``count`` copies, each with 16 random bytes written at a random offset inside the scan data."""
    rng = np.random.default_rng(seed)
    start, end = scan_range(data)
    copies = []
    for _ in range(count):
        offset = int(rng.integers(start, end - 16))
        copies.append(data[:offset] + rng.integers(0, 256, 16, dtype=np.uint8).tobytes() + data[offset + 16 :])
    return copies


def bit_flipped(data: bytes, count: int, seed: int) -> list[bytes]:
    """``count`` copies, each with one random bit flipped inside the scan data."""
    rng = np.random.default_rng(seed)
    start, end = scan_range(data)
    copies = []
    for _ in range(count):
        damaged = bytearray(data)
        damaged[int(rng.integers(start, end))] ^= 1 << int(rng.integers(0, 8))
        copies.append(bytes(damaged))
    return copies


@pytest.fixture
def without_libjpeg(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The fallback path, as on an install without the libjpeg headers."""
    monkeypatch.setattr(jpeg_check, "_libjpeg", None)
    monkeypatch.setattr(jpeg_check, "_warned", False)
    yield


# --- the libjpeg check ---------------------------------------------------------------------------


@needs_libjpeg
@pytest.mark.parametrize("kind", ENCODINGS)
def test_clean_jpegs_pass(kind: str) -> None:
    assert jpeg_damage(encode(kind)) is None
    assert jpeg_damage(FACES.read_bytes()) is None


@needs_libjpeg
@pytest.mark.parametrize("kind", ENCODINGS)
def test_truncated_and_spliced_scans_are_reported(kind: str) -> None:
    good = encode(kind)
    cut = middle(good)
    assert (jpeg_damage(good[:cut]) or "").startswith("libjpeg: Premature end of JPEG file")
    # cut, then closed with an end-of-image marker (passes the header's truncation test)
    closed = jpeg_damage(good[:cut] + b"\xff\xd9") or ""
    assert closed.startswith("libjpeg: Corrupt JPEG data: premature end of data segment"), closed
    # bytes before the end-of-image marker that no scan accounts for
    junk = jpeg_damage(good[:-2] + bytes(range(1, 101)) + b"\xff\xd9") or ""
    assert "extraneous bytes before marker 0xd9" in junk, junk


@needs_libjpeg
@pytest.mark.parametrize("kind", ENCODINGS)
def test_overwritten_and_bit_flipped_scans_are_reported(kind: str) -> None:
    """libjpeg sees a good share of random damage (not all: a change that still decodes to valid
    codes and ends the scan on time gives no warning), and more than the structural scan."""
    good = encode(kind)
    for copies, least in ((overwritten(good, 50, seed=0), 15), (bit_flipped(good, 100, seed=1), 10)):
        found = [jpeg_damage(copy) for copy in copies]
        flagged = [message for message in found if message is not None]
        assert len(flagged) >= least, found
        assert len(flagged) > sum(structural_damage(copy) is not None for copy in copies)
        assert all(m.startswith("libjpeg") and "\n" not in m for m in flagged), flagged


@needs_libjpeg
def test_message_counts_warnings_and_fatal_errors_are_reported() -> None:
    good = encode("restart")
    many = jpeg_damage(good[: middle(good)] + b"\xff\xd9") or ""
    assert many.endswith(" warnings)") and int(many.rsplit("(", 1)[1].split()[0]) > 1, many
    assert jpeg_damage(b"") == "libjpeg error: Empty input file"
    assert (jpeg_damage(b"\xff\xd8\xff\xd9") or "").startswith("libjpeg error:")
    baseline = encode("baseline")
    bad_marker = bytearray(baseline)
    bad_marker[middle(baseline) : middle(baseline) + 2] = b"\xff\x17"  # a reserved marker inside the scan
    assert (jpeg_damage(bytes(bad_marker)) or "").startswith("libjpeg error: Unsupported marker type 0x17")


@needs_libjpeg
def test_frames_beyond_the_decoder_limit_are_left_to_the_decoder() -> None:
    """A 60000x60000 frame header on a few hundred bytes: checking it would allocate about 10 GB of
    coefficients; the check answers None at once and cv2.imdecode refuses it (over 2**30 pixels)."""
    small = bytearray(cv2.imencode(".jpg", np.full((16, 16, 3), 128, np.uint8))[1].tobytes())
    sof = small.find(b"\xff\xc0")
    small[sof + 5 : sof + 9] = (60000).to_bytes(2, "big") * 2  # height, width
    assert jpeg_damage(bytes(small)) is None
    reason = decode_image(bytes(small))
    assert isinstance(reason, str) and reason.startswith("the decoder refused it:") and "\n" not in reason, reason


@needs_libjpeg
def test_extension_takes_any_bytes_like_object_and_rejects_others() -> None:
    _jpegcheck = jpeg_check._libjpeg
    assert _jpegcheck is not None
    good = encode("baseline")
    assert _jpegcheck.damage(bytearray(good)) is None and _jpegcheck.damage(memoryview(good)) is None
    assert _jpegcheck.damage(np.frombuffer(good, np.uint8)) is None
    with pytest.raises(TypeError):
        _jpegcheck.damage("not bytes")
    assert _jpegcheck.LIBJPEG_VERSION > 0


@needs_libjpeg
def test_concurrent_checks_give_the_same_answers() -> None:
    """The GIL is released while libjpeg runs: threads must not share any state."""
    good = encode("progressive")
    files = [good, *overwritten(good, 12, seed=2), good[: middle(good)] + b"\xff\xd9"]
    expected = [jpeg_damage(f) for f in files]
    results: list[list[str | None]] = [[] for _ in range(4)]

    def work(out: list[str | None]) -> None:
        for _ in range(5):
            out += [jpeg_damage(f) for f in files]

    threads = [threading.Thread(target=work, args=(out,)) for out in results]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert all(out == expected * 5 for out in results)


def _rss_bytes() -> int:
    return int(Path("/proc/self/statm").read_text().split()[1]) * 4096


@needs_libjpeg
@pytest.mark.skipif(not Path("/proc/self/statm").is_file(), reason="reads RSS from /proc (Linux)")
def test_no_memory_is_kept_on_any_path() -> None:
    """Clean, warning and fatal-error (longjmp) paths, 600 calls each: libjpeg allocates about 1 MB
    of coefficient arrays per call for this 640x480 image, so a leak would show as hundreds of MB."""
    good = encode("baseline")
    fatal = bytearray(good)
    fatal[middle(good) : middle(good) + 2] = b"\xff\x17"  # error_exit in mid-scan, coefficients allocated
    files = [good, good[: middle(good)] + b"\xff\xd9", bytes(fatal), b"\xff\xd8\xff\xd9"]
    for f in files * 20:
        jpeg_damage(f)
    before = _rss_bytes()
    for f in files * 600:
        jpeg_damage(f)
    assert _rss_bytes() - before < 20 * 2**20


# --- the shared decode path (CLI, API) -------------------------------------------------------------


@needs_libjpeg
def test_read_image_names_the_damage(tmp_path: Path) -> None:
    good = encode("baseline")
    path = tmp_path / "damaged.jpg"
    path.write_bytes(good[: middle(good)] + b"\xff\xd9")
    reason = read_image(path)
    assert isinstance(reason, str)
    assert reason.startswith("cannot read image: damaged JPEG image: libjpeg: Corrupt JPEG data"), reason
    assert isinstance(read_image(FACES), np.ndarray)
    assert image_damage(encode("baseline")) is None and image_damage(b"\x89PNG\r\n\x1a\n") is None


@needs_libjpeg
def test_detect_cli_reports_a_damaged_jpeg_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from facedet.cli import main
    from facedet.testing import write_random_model

    model = write_random_model(tmp_path / "m.fdet")
    good = encode("baseline")
    damaged = tmp_path / "damaged.jpg"
    damaged.write_bytes(good[: middle(good)] + b"\xff\xd9")
    assert main(["detect", str(FACES), str(damaged), "--model", str(model), "--json", "--min-score", "0"]) == 1
    errors = capsys.readouterr().err.strip().splitlines()
    assert errors == [f"error: {damaged}: cannot read image: damaged JPEG image: {jpeg_damage(damaged.read_bytes())}"]


# --- the service ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    from facedet.testing import write_random_model
    from service.app import create_app
    from service.settings import Settings

    model = write_random_model(tmp_path_factory.mktemp("model") / "random.fdet", seed=0)
    with TestClient(create_app(Settings(model_path=model))) as c:
        yield c


@needs_libjpeg
@pytest.mark.parametrize("kind", ENCODINGS)
def test_service_answers_422_with_libjpeg_message(client: TestClient, kind: str) -> None:
    good = encode(kind)
    assert client.post("/v1/detect", content=good).status_code == 200
    damaged = good[: middle(good)] + b"\xff\xd9"
    response = client.post("/v1/detect", content=damaged)
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert detail == f"damaged JPEG image: {jpeg_damage(damaged)}" and "libjpeg: Corrupt JPEG data" in detail


# --- the fallback: structural scan only ----------------------------------------------------------


def test_fallback_runs_the_structural_scan_and_says_so_once(
    without_libjpeg: None, caplog: pytest.LogCaptureFixture
) -> None:
    good = encode("restart")
    impossible = bytearray(good)
    impossible[middle(good) : middle(good) + 2] = b"\xff\x17"  # a reserved marker inside the scan
    with caplog.at_level(logging.WARNING, logger="facedet.jpeg_check"):
        assert not libjpeg_check_built()
        assert jpeg_damage(good) is None
        assert (jpeg_damage(bytes(impossible)) or "").startswith("unexpected marker 0xFF17 after the scan data")
        assert jpeg_damage(good[: middle(good)]) == "no end-of-image marker (the file was cut short)"
        shuffled = good[: middle(good)] + good[middle(good) + 1000 :]  # restart markers out of order
        assert (jpeg_damage(shuffled) or "").startswith("restart markers out of sequence")
    warnings = [r for r in caplog.records if "libjpeg check" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING


def test_fallback_in_the_shared_decode_and_the_service(without_libjpeg: None, client: TestClient) -> None:
    good = encode("baseline")
    impossible = bytearray(good)
    impossible[middle(good) : middle(good) + 8] = b"\xff\x17\x00\x42\xff\xc0\x13\x37"
    reason = decode_image(bytes(impossible))
    assert isinstance(reason, str) and reason.startswith("damaged JPEG image: unexpected marker 0xFF17")
    assert isinstance(decode_image(good), np.ndarray)
    response = client.post("/v1/detect", content=bytes(impossible))
    assert response.status_code == 422 and response.json()["detail"] == reason
    assert client.post("/v1/detect", content=good).status_code == 200
