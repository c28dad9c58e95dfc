"""Box geometry in numpy: IoU, non-maximum suppression, letterbox and its inverse.

Torch-free. Boxes are float (N, 4) arrays of x1, y1, x2, y2 in pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float32]


def box_area(boxes: NDArray[np.floating]) -> NDArray[np.floating]:
    """(N,) areas of (N, 4) xyxy boxes; degenerate boxes have area 0."""
    widths, heights = np.clip(boxes[:, 2] - boxes[:, 0], 0, None), np.clip(boxes[:, 3] - boxes[:, 1], 0, None)
    area: NDArray[np.floating] = widths * heights
    return area


def iou_matrix(a: NDArray[np.floating], b: NDArray[np.floating]) -> NDArray[np.float64]:
    """(N, M) intersection-over-union of xyxy boxes a (N, 4) and b (M, 4); 0 where the union is empty."""
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])  # (N, M, 2)
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = np.clip(rb - lt, 0, None)
    inter = wh[..., 0] * wh[..., 1]
    union = box_area(a)[:, None] + box_area(b)[None, :] - inter
    result: NDArray[np.float64] = np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)
    return result


def nms(boxes: NDArray[np.floating], scores: NDArray[np.floating], iou_threshold: float) -> NDArray[np.int64]:
    """Greedy non-maximum suppression.

    Returns the indices of the kept boxes, highest score first. Ties in score keep the lower
    index first (stable sort), so the result is deterministic.
    """
    order = np.argsort(-np.asarray(scores), kind="stable")
    boxes = np.asarray(boxes, np.float64)
    keep: list[int] = []
    while order.size:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        iou = iou_matrix(boxes[i : i + 1], boxes[rest])[0]  # (len(rest),)
        order = rest[iou <= iou_threshold]
    return np.asarray(keep, np.int64)


@dataclass(frozen=True)
class Letterbox:
    """How an image was fitted into the square network input (top-left aligned).

    ``network = original * scale``; the padding lies right and bottom, so the inverse is a
    division by ``scale``.
    """

    scale: float
    width: int  # original image width (pixels)
    height: int  # original image height (pixels)

    def to_original(self, boxes: NDArray[np.floating]) -> FloatArray:
        """Map xyxy boxes from network pixels back to original pixels, clipped to the image."""
        out = np.asarray(boxes, np.float32) / np.float32(self.scale)
        out[:, 0::2] = np.clip(out[:, 0::2], 0, self.width)
        out[:, 1::2] = np.clip(out[:, 1::2], 0, self.height)
        return out


def letterbox(image: NDArray[np.uint8], size: int, pad_value: int = 114) -> tuple[NDArray[np.uint8], Letterbox]:
    """Resize an HxWx3 uint8 image to fit size x size (aspect kept), pad right and bottom.

    Returns the (size, size, 3) uint8 image and the ``Letterbox`` to undo it.
    """
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 image, got shape {image.shape}")
    height, width = image.shape[:2]
    scale = size / max(height, width)
    new_w = max(1, min(size, round(width * scale)))
    new_h = max(1, min(size, round(height * scale)))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    resized = cv2.resize(image, (new_w, new_h), interpolation=interpolation)
    canvas = np.full((size, size, 3), pad_value, np.uint8)
    canvas[:new_h, :new_w] = resized
    return canvas, Letterbox(scale=scale, width=width, height=height)
