"""The one shape every detector returns, and the protocol every detector follows.

Torch-free. The integer engine, the torch predictor and the peer adapters all return
``Detections``, so the FDDB evaluator, drawing and the service never care which produced them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np
from numpy.typing import NDArray

if TYPE_CHECKING:  # anchors imports this module; the name is only needed for annotations
    from facedet.anchors import PostProcess


@dataclass(frozen=True)
class Detections:
    """Face detections in original-image pixels.

    Attributes:
        boxes: float32 (N, 4) as x1, y1, x2, y2 (pixels, x2/y2 exclusive edges).
        scores: float32 (N,) in [0, 1], sorted descending.
    """

    boxes: NDArray[np.float32]
    scores: NDArray[np.float32]

    def __post_init__(self) -> None:
        if self.boxes.ndim != 2 or self.boxes.shape[1] != 4:
            raise ValueError(f"boxes must be (N, 4), got {self.boxes.shape}")
        if self.scores.shape != (self.boxes.shape[0],):
            raise ValueError(f"scores must be ({self.boxes.shape[0]},), got {self.scores.shape}")

    def __len__(self) -> int:
        return int(self.scores.shape[0])

    @classmethod
    def empty(cls) -> Detections:
        return cls(np.zeros((0, 4), np.float32), np.zeros((0,), np.float32))

    def xywh(self) -> NDArray[np.float32]:
        """(N, 4) as left, top, width, height."""
        out = self.boxes.copy()
        out[:, 2:] -= out[:, :2]
        return out

    def filter(self, min_score: float = 0.0, max_count: int | None = None) -> Detections:
        """Keep detections with score >= min_score, at most max_count of the best."""
        keep = np.flatnonzero(self.scores >= min_score)
        if max_count is not None:
            keep = keep[:max_count]
        return Detections(self.boxes[keep], self.scores[keep])

    def to_json(self) -> list[dict[str, float]]:
        """One dict per face: x, y, width, height, score (pixels, rounded to 0.01)."""
        return [
            {
                "x": round(float(x), 2),
                "y": round(float(y), 2),
                "width": round(float(w), 2),
                "height": round(float(h), 2),
                "score": round(float(s), 5),
            }
            for (x, y, w, h), s in zip(self.xywh(), self.scores, strict=True)
        ]


class Detector(Protocol):
    """Anything that finds faces in a BGR uint8 image: the integer engine (``facedet.engine.IntEngine``),
    the torch model (``facedet.models.predict.TorchDetector``) and the peers (``facedet.peers``).

    ``facedet.runtime.load_detector`` returns one; the evaluator, the CLI, the Python API and the
    service read these attributes directly.

    Attributes:
        name: model family or peer name (``"dupnet-tinier-yolo"``, ``"haar"``).
        img_size: square network input in pixels; None for a peer that runs at each image's own size.
        stored_bytes: bytes of the stored model (weights, thresholds), None where unknown.
        macs: multiply-accumulates per image at ``img_size``, None where not fixed (peers).
    """

    @property
    def name(self) -> str: ...

    @property
    def img_size(self) -> int | None: ...

    @property
    def stored_bytes(self) -> int | None: ...

    @property
    def macs(self) -> int | None: ...

    def detect(self, image_bgr: NDArray[np.uint8], post: PostProcess | None = None) -> Detections:
        """Faces in an (H, W, 3) uint8 BGR image, in its pixels, best first. ``post`` overrides the
        score threshold / NMS settings the detector was loaded with (peers use their own and ignore it)."""
        ...
