"""FDDB regions: ground-truth ellipses and detection rectangles as pixel sets, and their overlaps.

Drawn exactly as the official evaluator draws them (see ``facedet.evaluation.fddb_eval`` step 1): OpenCV
ellipses with the centre rounded, radii truncated and the angle in degrees; rectangles covering
``round(left), round(top)`` to ``round(left + width), round(top + height)``, corners included.
Each region is clipped to the image and stored as a boolean mask in its bounding window.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

from facedet.jpeg_scan import jpeg_frame

__all__ = ["Region", "image_size", "rasterize_ellipse", "rasterize_rect", "overlap_matrix"]


@dataclass(frozen=True)
class Region:
    """A rasterized region: ``mask`` (h, w) bool placed at pixel ``(x0, y0)`` of the image."""

    x0: int
    y0: int
    mask: NDArray[np.bool_]
    area: int  # pixels inside the image


def _round_f32(v: float) -> int:
    # cvPointFrom32f(cvPoint2D32f(v)): to float32, then cvRound (round half to even).
    return int(np.rint(np.float32(v)))


@functools.lru_cache(maxsize=16384)
def image_size(path: str) -> tuple[int, int]:
    """(width, height) of an image in pixels, read from the JPEG header when possible (cached)."""
    size = _jpeg_size(path)
    if size is None:
        image = cv2.imread(path, cv2.IMREAD_UNCHANGED | cv2.IMREAD_IGNORE_ORIENTATION)
        if image is None:
            raise FileNotFoundError(f"cannot read image {path}")
        size = (int(image.shape[1]), int(image.shape[0]))
    return size


def _jpeg_size(path: str) -> tuple[int, int] | None:
    """(width, height) from a JPEG's frame header (``facedet.jpeg_scan.jpeg_frame``), or None when
    the file is not a JPEG or its header cannot be read (the caller then decodes the image)."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:2] != b"\xff\xd8":
        return None
    try:
        frame = jpeg_frame(data)
    except ValueError:
        return None
    return frame.width, frame.height


def _window(x1: int, y1: int, x2: int, y2: int, width: int, height: int) -> tuple[int, int, int, int]:
    """Inclusive pixel box clipped to the image, as (x0, y0, x_end, y_end) with exclusive ends."""
    return max(0, x1), max(0, y1), min(width, x2 + 1), min(height, y2 + 1)


def rasterize_ellipse(ellipse: Sequence[float], width: int, height: int) -> Region:
    """Pixels of a filled FDDB ellipse ``(major_radius, minor_radius, angle_rad, cx, cy, ...)``.

    Drawn with OpenCV exactly as the official evaluator draws it (cvEllipse, 8-connected, no
    sub-pixel shift), but on a window around the ellipse instead of a full image mask.
    """
    ra, rb, t, cx, cy = (float(v) for v in ellipse[:5])
    # The official code reads t, stores (pi - t) in degrees, and draws at 180 - that angle.
    angle = 180.0 - (np.pi - t) * 180.0 / np.pi
    center = (_round_f32(cx), _round_f32(cy))
    axes = (int(ra), int(rb))  # static_cast<int>: truncation toward zero
    reach = max(abs(axes[0]), abs(axes[1])) + 2  # any rotation stays within this square
    x0, y0, x_end, y_end = _window(
        center[0] - reach, center[1] - reach, center[0] + reach, center[1] + reach, width, height
    )
    if x_end <= x0 or y_end <= y0:
        return Region(0, 0, np.zeros((0, 0), bool), 0)
    canvas = np.zeros((y_end - y0, x_end - x0), np.uint8)
    cv2.ellipse(canvas, (center[0] - x0, center[1] - y0), axes, angle, 0, 360, 1, -1, cv2.LINE_8)
    mask = canvas.astype(bool)
    return Region(x0, y0, mask, int(np.count_nonzero(mask)))


def rasterize_rect(rect: Sequence[float], width: int, height: int) -> Region:
    """Pixels of a filled detection rectangle ``(left, top, width, height, ...)`` (corners inclusive)."""
    x, y, w, h = (float(v) for v in rect[:4])
    xa, ya, xb, yb = _round_f32(x), _round_f32(y), _round_f32(x + w), _round_f32(y + h)
    x0, y0, x_end, y_end = _window(min(xa, xb), min(ya, yb), max(xa, xb), max(ya, yb), width, height)
    if x_end <= x0 or y_end <= y0:
        return Region(0, 0, np.zeros((0, 0), bool), 0)
    mask = np.ones((y_end - y0, x_end - x0), bool)
    return Region(x0, y0, mask, mask.size)


def overlap_matrix(faces: Sequence[Region], dets: Sequence[Region]) -> NDArray[np.float64]:
    """(K, N) intersection / union of pixel sets; 0 where both are empty."""
    out = np.zeros((len(faces), len(dets)), np.float64)
    for i, a in enumerate(faces):
        ah, aw = a.mask.shape
        for j, d in enumerate(dets):
            dh, dw = d.mask.shape
            x0, y0 = max(a.x0, d.x0), max(a.y0, d.y0)
            x1, y1 = min(a.x0 + aw, d.x0 + dw), min(a.y0 + ah, d.y0 + dh)
            if x1 <= x0 or y1 <= y0:
                continue
            ma = a.mask[y0 - a.y0 : y1 - a.y0, x0 - a.x0 : x1 - a.x0]
            md = d.mask[y0 - d.y0 : y1 - d.y0, x0 - d.x0 : x1 - d.x0]
            inter = int(np.count_nonzero(ma & md))
            union = a.area + d.area - inter
            out[i, j] = inter / union if union > 0 else 0.0
    return out
