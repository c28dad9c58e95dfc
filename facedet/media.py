"""Inputs a user points at: image files, folders, glob patterns and videos. Torch-free (OpenCV).

``expand_sources`` turns command-line arguments into an ordered list of ``Source`` (a folder
gives its images and videos, sorted, not recursive; a pattern such as ``'photos/**/*.jpg'`` is
expanded with ``glob``); ``read_image`` decodes one image without OpenCV's stderr warnings,
refusing damaged JPEGs (``image_damage``, shared with the service); ``video_frames`` yields a
video's frames.
"""

from __future__ import annotations

import glob
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
from numpy.typing import NDArray

from facedet.jpeg_check import jpeg_damage

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".pgm")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg")
GLOB_CHARS = "*?["
JPEG_SIGNATURE = b"\xff\xd8\xff"


@dataclass(frozen=True)
class Source:
    """One input: ``kind`` is "image" (any file not named as a video), "video" or "missing"."""

    path: Path
    kind: Literal["image", "video", "missing"]


def _kind(path: Path) -> Literal["image", "video", "missing"]:
    if not path.is_file():
        return "missing"
    return "video" if path.suffix.lower() in VIDEO_SUFFIXES else "image"


def expand_sources(specs: list[str]) -> list[Source]:
    """Files as given, folders as their (sorted) media files, glob patterns as their matches.

    A missing file, an empty folder or a pattern with no match becomes a "missing" source, so the
    caller reports it by name and goes on with the rest.
    """
    sources: list[Source] = []
    for spec in specs:
        path = Path(spec)
        if path.is_dir():
            media = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES + VIDEO_SUFFIXES)
            sources += [Source(p, _kind(p)) for p in media if p.is_file()] or [Source(path, "missing")]
        elif not path.exists() and any(c in spec for c in GLOB_CHARS):
            matches = sorted(Path(p) for p in glob.glob(spec, recursive=True))
            sources += [Source(p, _kind(p)) for p in matches if p.is_file()] or [Source(path, "missing")]
        else:
            sources.append(Source(path, _kind(path)))
    return sources


def image_damage(data: bytes) -> str | None:
    """Why the encoded image is damaged although the decoder would still return pixels, or None.

    JPEG only (libjpeg merely warns about damaged entropy-coded data and fills grey or garbled
    blocks; see ``facedet.jpeg_check``); other formats are left to the decoder.
    """
    if data[:3] != JPEG_SIGNATURE:
        return None
    damage = jpeg_damage(data)
    return None if damage is None else f"damaged JPEG image: {damage}"


def decode_image(data: bytes) -> NDArray[np.uint8] | str:
    """BGR uint8 image from encoded bytes, or a one-line reason they are not a usable image."""
    if not data:
        return "empty file"
    if damage := image_damage(data):
        return damage
    try:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    except cv2.error as exc:  # raised, not None, e.g. beyond OpenCV's pixel limit (CV_IO_MAX_IMAGE_PIXELS)
        return f"the decoder refused it: {str(exc).split('error: ', 1)[-1].strip()}"
    return "not a decodable image file" if image is None else np.asarray(image, np.uint8)


def read_image(path: str | Path) -> NDArray[np.uint8] | str:
    """The BGR image, or a one-line reason it cannot be read (decoded from bytes: no OpenCV
    warnings on stderr)."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        return f"cannot read image: {exc.strerror or exc}"
    image = decode_image(data)
    return f"cannot read image: {image}" if isinstance(image, str) else image


def video_frames(path: str | Path) -> Iterator[tuple[int, NDArray[np.uint8]]]:
    """(frame index, BGR frame) of every frame of a video file.

    Raises:
        ValueError: the file cannot be opened as a video.
    """
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        capture.release()
        raise ValueError(f"{path}: cannot open as a video")
    try:
        index = 0
        while True:
            ok, frame = capture.read()
            if not ok or frame is None:
                return
            yield index, np.asarray(frame, np.uint8)
            index += 1
    finally:
        capture.release()


def video_info(path: str | Path) -> tuple[float, int]:
    """(frames per second, frame count) as the container states them (0 when unknown)."""
    capture = cv2.VideoCapture(str(path))
    try:
        return float(capture.get(cv2.CAP_PROP_FPS) or 0.0), int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    finally:
        capture.release()
