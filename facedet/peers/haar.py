"""OpenCV's Haar cascade as a peer detector (the cascade XML ships with opencv-python 4.x).

Settings are those of ``../shared/fddb-reference/haar-dets.txt``: frontalface_default, scale
factor 1.1, 3 neighbours, minimum size 20 px, on the grey image; the score is the cascade's level
weight from ``detectMultiScale3(..., outputRejectLevels=True)`` (unbounded, not a probability).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

from facedet.anchors import PostProcess
from facedet.detections import Detections

CASCADE = "haarcascade_frontalface_default.xml"


class HaarPeer:
    """Haar cascade face detector; ``detect`` returns square boxes on the inner face."""

    name = "haar"
    img_size: int | None = None  # runs on the image at its own size

    def __init__(self, scale_factor: float = 1.1, min_neighbors: int = 3, min_size: int = 20) -> None:
        path = Path(cv2.data.haarcascades) / CASCADE  # type: ignore[attr-defined]  # (absent from the stubs)
        if not path.exists():
            raise ImportError(
                f"{path} not found: OpenCV 5 wheels dropped the cascades; pip install 'opencv-python-headless<5'"
            )
        self.cascade = cv2.CascadeClassifier(str(path))
        self.scale_factor = scale_factor
        self.min_neighbors = min_neighbors
        self.min_size = min_size
        # Model file size: what a user downloads to run this peer.
        self.stored_bytes: int | None = path.stat().st_size
        self.macs: int | None = None  # a cascade has no fixed MAC count

    def detect(self, image_bgr: NDArray[np.uint8], post: PostProcess | None = None) -> Detections:
        """Faces in a BGR image; ``post`` is ignored (the peer keeps its published settings)."""
        gray = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2GRAY) if image_bgr.ndim == 3 else image_bgr
        rects, _levels, weights = self.cascade.detectMultiScale3(
            gray,
            scaleFactor=self.scale_factor,
            minNeighbors=self.min_neighbors,
            minSize=(self.min_size, self.min_size),
            outputRejectLevels=True,
        )
        if len(rects) == 0:
            return Detections.empty()
        xywh = np.asarray(rects, np.float32).reshape(-1, 4)
        scores = np.asarray(weights, np.float32).reshape(-1)
        order = np.argsort(-scores, kind="stable")
        boxes = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)[order]
        return Detections(boxes.astype(np.float32), scores[order])
