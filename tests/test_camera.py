"""The camera demo in headless mode over a generated video, and its error paths."""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from facedet.cli import main
from facedet.detections import Detections
from facedet.draw import draw_detections
from service.camera import CameraError, open_capture, parse_source, run_camera

FACES = Path(__file__).resolve().parent / "data" / "service" / "faces_640x480.jpg"


def write_video(path: Path, frames: int = 6, size: tuple[int, int] = (320, 240)) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, size)
    assert writer.isOpened()
    base = cv2.resize(cv2.imread(str(FACES)), size)
    for i in range(frames):
        writer.write(np.roll(base, 4 * i, axis=1))
    writer.release()
    return path


@pytest.fixture(scope="module")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from facedet.testing import write_random_model

    return write_random_model(tmp_path_factory.mktemp("model") / "random.fdet", seed=0)


def test_draw_detections_draws_boxes_in_place_or_on_copy() -> None:
    image = np.zeros((60, 80, 3), np.uint8)
    detections = Detections(np.array([[10, 10, 50, 40]], np.float32), np.array([0.87], np.float32))
    copy = draw_detections(image, detections, copy=True)
    assert image.sum() == 0 and copy[10, 30].tolist() == [0, 255, 0]  # top edge is green
    assert draw_detections(image, detections) is image and image.sum() > 0


def test_headless_camera_writes_annotated_video(tmp_path: Path, model_path: Path) -> None:
    video = write_video(tmp_path / "in.avi")
    out = tmp_path / "out.mp4"
    code = main(
        ["camera", "--source", str(video), "--model", str(model_path), "--headless", "--output", str(out),
         "--min-score", "0"]
    )  # fmt: skip
    assert code == 0
    capture = cv2.VideoCapture(str(out))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    assert len(frames) == 6 and frames[0].shape == (240, 320, 3)
    original = cv2.resize(cv2.imread(str(FACES)), (320, 240))
    assert np.abs(frames[0].astype(int) - original).mean() > 1  # boxes and the FPS line were drawn


def test_run_camera_counts_and_max_frames(tmp_path: Path, model_path: Path) -> None:
    from facedet.engine import IntEngine

    video = write_video(tmp_path / "in.avi", frames=8)
    seen: list[int] = []
    stats = run_camera(
        IntEngine.load(model_path), str(video), headless=True, max_frames=5, min_score=0.0,
        on_frame=lambda frame, dets: seen.append(len(dets)),
    )  # fmt: skip
    assert stats.frames == 5 == len(seen) and stats.faces == sum(seen) > 0 and stats.fps > 0


def test_unopenable_source_is_a_clear_error(
    tmp_path: Path, model_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert parse_source("0") == 0 and parse_source("clip.mp4") == "clip.mp4"
    with pytest.raises(CameraError, match="no such file"):
        open_capture(str(tmp_path / "missing.mp4"))
    not_video = tmp_path / "not_video.mp4"
    not_video.write_bytes(b"this is not a video")
    out = ["--headless", "--output", str(tmp_path / "o.mp4")]
    assert main(["camera", "--source", str(not_video), "--model", str(model_path), *out]) == 2
    assert "cannot open video source" in capsys.readouterr().err
    assert main(["camera", "--source", "97", "--model", str(model_path), *out]) == 2
    assert "cannot open camera 97" in capsys.readouterr().err
    assert main(["camera", "--source", "0", "--model", str(tmp_path / "missing.fdet"), *out]) == 2


def test_headless_without_output_is_refused_before_any_work(
    tmp_path: Path, model_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    video = write_video(tmp_path / "clip.avi")
    assert main(["camera", "--source", str(video), "--model", str(model_path), "--headless"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--headless" in err and "--output" in err


def test_window_without_gui_or_extra_says_how_to_get_one(
    tmp_path: Path, model_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import service.camera_window as camera_window

    monkeypatch.setattr(camera_window, "opencv_has_gui", lambda: False)
    monkeypatch.setitem(sys.modules, "pygame", None)  # the camera extra is not installed
    video = write_video(tmp_path / "clip.avi")
    assert main(["camera", "--source", str(video), "--model", str(model_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "facedet-tiny[camera]" in err and "--headless" in err


def test_pygame_window_shows_the_annotated_frames(
    tmp_path: Path, model_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pygame = pytest.importorskip("pygame")
    import service.camera_window as camera_window
    from facedet.engine import IntEngine

    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")  # a real SDL window, drawn off-screen
    monkeypatch.setattr(camera_window, "opencv_has_gui", lambda: False)
    shown: list[np.ndarray] = []
    original = camera_window.PygameWindow.show

    def show(self: camera_window.PygameWindow, frame: np.ndarray) -> bool:
        keep_going = original(self, frame)
        shown.append(pygame.surfarray.array3d(pygame.display.get_surface()).transpose(1, 0, 2)[:, :, ::-1])
        return keep_going

    monkeypatch.setattr(camera_window.PygameWindow, "show", show)
    frames: list[np.ndarray] = []
    stats = run_camera(
        IntEngine.load(model_path),
        str(write_video(tmp_path / "clip.avi")),
        max_frames=3,
        min_score=0.0,
        on_frame=lambda frame, _: frames.append(frame.copy()),
    )
    assert stats.frames == 3 and len(shown) == 3
    assert np.array_equal(shown[-1], frames[-1])  # the window holds exactly the annotated frame
