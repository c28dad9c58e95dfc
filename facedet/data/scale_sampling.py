"""Scale-aware training crops: one face per sample, rescaled to a drawn height, and a window around it.

Why: WIDER faces are small (most under 32 px once a whole 480-px image is letterboxed to 256-320),
while the deployed detector sees faces of about 16-320 px at its 416-px input (FDDB: median box
height ~94 px). Letterboxing whole training images therefore teaches almost only small faces and
starves the large anchors. This sampler follows PyramidBox's data-anchor-sampling and SSD-style
crops: pick a face, draw a target box height log-uniformly in ``[min_height, max_height]`` network
pixels, rescale the whole image so that the chosen face gets that height, and cut a ``size`` x
``size`` window that contains it (the network is fully convolutional, so training windows may be
smaller than the deployment input).

Upscaling is capped (``max_upscale``): a 12-px face blown up 20x is a blur, not a face. When no
face can reach the drawn height within the cap, the largest face is used at the cap.

Call convention (as ``facedet.data.transforms``)::

    out = sampler(image=bgr_uint8_hwc, bboxes=float32 (K, 4) xyxy, ignore=int (K,))
    out["image"]  # (size, size, 3) uint8, pad value 114 where the window leaves the image
    out["bboxes"], out["ignore"]  # (K', 4) boxes in window pixels and their ignore flags

Faces cut by the window keep their clipped box; those less than ``min_visibility`` visible become
ignore regions (neither positives nor negatives), those not visible at all are dropped.
``ignore`` labels are integers whose bit 0 is the ignore flag; higher bits travel unchanged (the
dataset keeps each box's source index there, as the albumentations policies carry labels).
Torch-free (numpy + cv2); the photometric part is passed in (albumentations lives in transforms).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

PAD_VALUE = 114  # letterbox padding: facedet.boxes.letterbox and ModelConfig.letterbox_value


class ScaleAwareCrop:
    """Seeded face-centred rescale-and-crop (see the module docstring).

    Args:
        size: window side in pixels (the training input).
        min_height, max_height: range (network pixels) of the chosen face's box height.
        max_upscale: largest image enlargement.
        min_visibility: faces with a smaller visible fraction of their area become ignore.
        photometric: optional image-only albumentations pipeline (colour jitter) applied last.
        flip_p: probability of a horizontal flip.
    """

    def __init__(
        self,
        size: int,
        min_height: float = 16.0,
        max_height: float = 320.0,
        max_upscale: float = 4.0,
        min_visibility: float = 0.6,
        photometric: Callable[..., Any] | None = None,
        flip_p: float = 0.5,
    ) -> None:
        if not 0 < min_height <= max_height:
            raise ValueError(f"need 0 < min_height <= max_height, got {min_height}, {max_height}")
        self.size = int(size)
        self.log_range = (math.log(min_height), math.log(max_height))
        self.max_upscale = float(max_upscale)
        self.min_visibility = float(min_visibility)
        self.photometric = photometric
        self.flip_p = float(flip_p)
        self.rng = np.random.default_rng()

    def set_random_seed(self, seed: int) -> None:
        """Make the next call a pure function of ``seed`` (resumable training)."""
        self.rng = np.random.default_rng(seed)
        if self.photometric is not None and hasattr(self.photometric, "set_random_seed"):
            self.photometric.set_random_seed(int(seed))

    def choose_scale(
        self, boxes: NDArray[np.float32], ignore: NDArray[np.bool_], image_hw: tuple[int, int]
    ) -> tuple[float, int | None]:
        """(image scale factor, index of the face the window must contain, or None for a whole image)."""
        heights = boxes[:, 3] - boxes[:, 1]
        candidates = np.flatnonzero(~ignore & (heights >= 2.0))
        if candidates.size == 0:  # no usable face: the whole image, letterboxed at a random scale
            return self.size / max(image_hw) * float(self.rng.uniform(0.5, 1.0)), None
        target = math.exp(self.rng.uniform(*self.log_range))
        reachable = candidates[heights[candidates] * self.max_upscale >= target]
        if reachable.size:
            face = int(self.rng.choice(reachable))
            return target / float(heights[face]), face
        face = int(candidates[np.argmax(heights[candidates])])
        return self.max_upscale, face

    def _window_origin(self, lo: float, hi: float, extent: int) -> int:
        """Origin along one axis for a face spanning [lo, hi] in an image of ``extent`` pixels."""
        first, last = hi - self.size, lo  # every origin in [first, last] keeps the face inside
        if first > last:  # face larger than the window: centre it
            first = last = (lo + hi - self.size) / 2
        # Prefer windows inside the image where the face allows it (less padding).
        inside_first, inside_last = max(first, min(0.0, extent - self.size)), min(last, max(0.0, extent - self.size))
        if inside_first <= inside_last:
            first, last = inside_first, inside_last
        return int(round(self.rng.uniform(first, last)))

    def __call__(self, image: NDArray[np.uint8], bboxes: Any, ignore: Any) -> dict[str, Any]:
        boxes = np.asarray(bboxes, np.float32).reshape(-1, 4)
        labels = np.asarray(ignore, np.int64).reshape(-1)
        height, width = image.shape[:2]
        scale, face = self.choose_scale(boxes, (labels & 1).astype(bool), (height, width))
        new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
        interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        resized = np.asarray(cv2.resize(image, (new_w, new_h), interpolation=interpolation), np.uint8)
        sx, sy = new_w / width, new_h / height
        scaled = boxes * np.array([sx, sy, sx, sy], np.float32)
        if face is None:
            x0 = -int(self.rng.integers(0, max(self.size - new_w, 0) + 1))
            y0 = -int(self.rng.integers(0, max(self.size - new_h, 0) + 1))
        else:
            x0 = self._window_origin(float(scaled[face, 0]), float(scaled[face, 2]), new_w)
            y0 = self._window_origin(float(scaled[face, 1]), float(scaled[face, 3]), new_h)
        window = _cut(resized, x0, y0, self.size)
        boxes_out, labels_out = _boxes_in_window(scaled, labels, x0, y0, self.size, self.min_visibility)
        if self.rng.random() < self.flip_p:
            window = np.ascontiguousarray(window[:, ::-1])
            boxes_out = np.stack([self.size - boxes_out[:, 2], boxes_out[:, 1], self.size - boxes_out[:, 0],
                                  boxes_out[:, 3]], axis=1)  # fmt: skip
        if self.photometric is not None:
            window = self.photometric(image=window)["image"]
        return {"image": window, "bboxes": boxes_out.astype(np.float32), "ignore": labels_out}


def _cut(image: NDArray[np.uint8], x0: int, y0: int, size: int) -> NDArray[np.uint8]:
    """The ``size`` x ``size`` window at (x0, y0) of ``image``, padded with PAD_VALUE outside it."""
    out = np.full((size, size, image.shape[2]), PAD_VALUE, np.uint8)
    height, width = image.shape[:2]
    sx0, sy0 = max(x0, 0), max(y0, 0)
    sx1, sy1 = min(x0 + size, width), min(y0 + size, height)
    if sx1 > sx0 and sy1 > sy0:
        out[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = image[sy0:sy1, sx0:sx1]
    return out


def _boxes_in_window(
    boxes: NDArray[np.float32], labels: NDArray[np.int64], x0: int, y0: int, size: int, min_visibility: float
) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
    """Shift (K, 4) boxes into the window, clip them, drop invisible ones, set the ignore bit (bit 0
    of ``labels``) of partly visible ones."""
    shifted = boxes - np.array([x0, y0, x0, y0], np.float32)
    clipped = np.clip(shifted, 0, size)
    area = np.prod(np.clip(shifted[:, 2:] - shifted[:, :2], 1e-6, None), axis=1)
    visible_wh = clipped[:, 2:] - clipped[:, :2]
    visible = np.prod(np.clip(visible_wh, 0, None), axis=1) / area
    keep = (visible_wh[:, 0] >= 1.0) & (visible_wh[:, 1] >= 1.0)
    labels = labels | (visible < min_visibility).astype(np.int64)
    return clipped[keep], labels[keep]
