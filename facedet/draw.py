"""Draw face detections on a BGR frame. Torch-free (numpy + cv2).

Used by the camera demo and ``facedet detect --draw``; drawing never lives in a model or engine.
"""

from __future__ import annotations

import cv2
import numpy as np
from numpy.typing import NDArray

from facedet.detections import Detections

Color = tuple[int, int, int]


def draw_detections(
    image: NDArray[np.uint8],
    detections: Detections,
    *,
    color: Color = (0, 255, 0),
    thickness: int = 2,
    show_scores: bool = True,
    copy: bool = False,
) -> NDArray[np.uint8]:
    """Draw one rectangle (and its score) per detection.

    Args:
        image: HxWx3 uint8 BGR image; drawn on in place unless ``copy``.
        detections: boxes in the image's own pixels.
        color: BGR colour of boxes and labels.
        thickness: line thickness in pixels.
        show_scores: write the score above each box.
        copy: draw on a copy and leave ``image`` untouched.

    Returns:
        The image drawn on (``image`` itself unless ``copy``).
    """
    out = image.copy() if copy else image
    height, width = out.shape[:2]
    scale = max(0.4, min(width, height) / 800)
    for (x1, y1, x2, y2), score in zip(detections.boxes, detections.scores, strict=True):
        p1 = (int(round(float(x1))), int(round(float(y1))))
        p2 = (int(round(float(x2))) - 1, int(round(float(y2))) - 1)  # x2/y2 are exclusive edges
        cv2.rectangle(out, p1, p2, color, thickness, cv2.LINE_AA)
        if show_scores:
            label = f"{float(score):.2f}"
            (tw, th), baseline = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
            top = p1[1] - th - baseline - 2
            if top < 0:  # no room above the box: put the label inside it
                top = p1[1]
            cv2.rectangle(out, (p1[0], top), (p1[0] + tw + 4, top + th + baseline + 2), color, -1)
            cv2.putText(
                out, label, (p1[0] + 2, top + th + 1), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1, cv2.LINE_AA
            )
    return out


def draw_text(
    image: NDArray[np.uint8], text: str, origin: tuple[int, int] = (8, 8), color: Color = (255, 255, 255)
) -> NDArray[np.uint8]:
    """Write ``text`` on a dark backing box with its top-left corner at ``origin`` (in place)."""
    height, width = image.shape[:2]
    scale = max(0.45, min(width, height) / 700)
    (tw, th), baseline = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    x, y = origin
    cv2.rectangle(image, (x, y), (x + tw + 8, y + th + baseline + 8), (0, 0, 0), -1)
    cv2.putText(image, text, (x + 4, y + th + 4), cv2.FONT_HERSHEY_SIMPLEX, scale, color, 1, cv2.LINE_AA)
    return image
