"""Live camera demo: OpenCV capture -> integer engine -> boxes, scores and FPS drawn on each frame.

A window (``q`` or Esc quits; ``service.camera_window``: OpenCV's GUI or the camera extra's
pygame) or, headless, an annotated video file. Torch-free: numpy, cv2 and
the facedet core only. ``facedet camera`` is the command-line front end.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

from facedet.anchors import PostProcess
from facedet.detections import Detections
from facedet.draw import draw_detections, draw_text
from service.camera_window import Window, WindowError, open_window
from service.state import Engine

logger = logging.getLogger("facedet.camera")

OPEN_TIMEOUT_MS = 5000


class CameraError(RuntimeError):
    """The source cannot be opened or read, or the output cannot be written."""


@dataclass
class CameraStats:
    """What a run did."""

    frames: int = 0
    faces: int = 0
    seconds: float = 0.0

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


def parse_source(text: str | int) -> int | str:
    """``"0"`` -> camera index 0; anything else (a file path or a URL) is returned as is."""
    if isinstance(text, int):
        return text
    stripped = text.strip()
    return int(stripped) if stripped.isdigit() else stripped


def open_capture(source: int | str) -> cv2.VideoCapture:
    """Open a camera index, video file or stream URL.

    Raises:
        CameraError: with what was tried, if it cannot be opened.
    """
    if isinstance(source, str) and "://" not in source and not Path(source).exists():
        raise CameraError(f"cannot open video source {source!r}: no such file (use an index like 0 for a camera)")
    params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, OPEN_TIMEOUT_MS, cv2.CAP_PROP_READ_TIMEOUT_MSEC, OPEN_TIMEOUT_MS]
    capture = cv2.VideoCapture(source, cv2.CAP_ANY, params)
    if not capture.isOpened():
        capture.release()
        kind = "camera" if isinstance(source, int) else "video source"
        raise CameraError(f"cannot open {kind} {source!r} (no such device, unreadable file or unreachable stream)")
    return capture


def open_writer(path: Path, fps: float, size: tuple[int, int]) -> cv2.VideoWriter:
    """An MP4 (mp4v) writer, or MJPG for ``.avi``; raises ``CameraError`` if it cannot be created."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fourcc = cv2.VideoWriter.fourcc(*("MJPG" if path.suffix.lower() == ".avi" else "mp4v"))
    writer = cv2.VideoWriter(str(path), fourcc, fps, size)
    if not writer.isOpened():
        raise CameraError(f"cannot write video {path} (unsupported extension or codec; try .mp4 or .avi)")
    return writer


def annotate(frame: NDArray[np.uint8], detections: Detections, fps: float, latency_ms: float) -> NDArray[np.uint8]:
    """Draw boxes with scores, then an FPS / latency / face-count line (in place)."""
    draw_detections(frame, detections)
    draw_text(frame, f"{fps:5.1f} FPS  {latency_ms:5.1f} ms  {len(detections)} faces")
    return frame


def run_camera(
    engine: Engine,
    source: int | str,
    *,
    headless: bool = False,
    output: Path | None = None,
    max_frames: int | None = None,
    min_score: float = 0.5,
    window: str = "facedet",
    on_frame: Callable[[NDArray[np.uint8], Detections], object] | None = None,
) -> CameraStats:
    """Detect faces on every frame until the source ends, ``max_frames``, or ``q``/Esc.

    Args:
        engine: anything with ``detect(image, post) -> Detections``.
        source: camera index, file path or URL.
        headless: no window (for servers and tests); frames go to ``output`` if given.
        output: annotated video to write (.mp4 or .avi).
        max_frames: stop after this many frames.
        min_score: drop detections scoring below this.
        window: title of the window.
        on_frame: called with each annotated frame and its detections.

    Raises:
        CameraError: the source cannot be opened, the output cannot be written, or no window can
            be shown (no GUI in OpenCV and no camera extra: the message says how to get one).
    """
    view: Window | None = None
    if not headless:
        try:
            view = open_window(window)
        except WindowError as exc:
            raise CameraError(str(exc)) from exc
    capture = open_capture(source)
    writer: cv2.VideoWriter | None = None
    post = PostProcess(score_threshold=min_score)
    stats = CameraStats()
    fps = 0.0
    start = last = time.perf_counter()
    try:
        while max_frames is None or stats.frames < max_frames:
            ok, captured = capture.read()
            if not ok or captured is None:
                break
            frame = np.asarray(captured, np.uint8)
            t0 = time.perf_counter()
            detections = engine.detect(frame, post).filter(min_score)
            latency = time.perf_counter() - t0
            now = time.perf_counter()
            # Exponential moving average of the whole-loop rate (read + detect + draw + show).
            instant = 1.0 / max(now - last, 1e-6)
            last = now
            fps = instant if stats.frames == 0 else 0.9 * fps + 0.1 * instant
            annotate(frame, detections, fps, latency * 1000)
            stats.frames += 1
            stats.faces += len(detections)
            if on_frame is not None:
                on_frame(frame, detections)
            if output is not None:
                if writer is None:
                    source_fps = capture.get(cv2.CAP_PROP_FPS)
                    rate = source_fps if 1 <= source_fps <= 120 else 25.0
                    writer = open_writer(output, rate, (frame.shape[1], frame.shape[0]))
                writer.write(frame)
            if view is not None:
                try:
                    if not view.show(frame):
                        break
                except WindowError as exc:
                    raise CameraError(str(exc)) from exc
        stats.seconds = time.perf_counter() - start
    finally:
        capture.release()
        if writer is not None:
            writer.release()
        if view is not None:
            view.close()
    return stats
