"""The Python API: ``Detector(model).detect(image)`` -> a list of ``Face``. Torch-free for integer models.

from facedet import Detector
detector = Detector("dupnet-tinier-yolo")        # a name, a .fdet/.pt path, or None (the default)
for face in detector.detect("photo.jpg"):        # a path, or a BGR uint8 array (OpenCV's layout)
    print(face.box, face.score)                  # (x, y, width, height) in pixels, score in [0, 1]
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from facedet.anchors import PostProcess
from facedet.detections import Detections
from facedet.media import read_image


@dataclass(frozen=True)
class Face:
    """One detected face, in pixels of the image given to ``detect``.

    Attributes:
        x1, y1, x2, y2: box corners (x2/y2 are exclusive edges).
        score: confidence in [0, 1].
    """

    x1: float
    y1: float
    x2: float
    y2: float
    score: float

    @property
    def box(self) -> tuple[float, float, float, float]:
        """(x, y, width, height): left, top, width, height."""
        return (self.x1, self.y1, self.x2 - self.x1, self.y2 - self.y1)

    @property
    def xyxy(self) -> tuple[float, float, float, float]:
        return (self.x1, self.y1, self.x2, self.y2)


def faces_from(detections: Detections) -> list[Face]:
    """``Detections`` (arrays) -> ``Face`` objects, best first."""
    return [
        Face(float(x1), float(y1), float(x2), float(y2), float(s))
        for (x1, y1, x2, y2), s in zip(detections.boxes, detections.scores, strict=True)
    ]


class Detector:
    """A face detector loaded once and used for many images.

    Args:
        model: model name (``"dupnet-tinier-yolo"``, ``"ifq-tinier-yolo"``, ``"default"``), an
            integer model file (.fdet) or a training checkpoint (.pt, needs the [train] extra);
            None: ``FACEDET_MODEL``, else the best shipped model.
        min_score: faces scoring below this are dropped (0..1).
        img_size: network input size (a multiple of 32); default: the model's deployment size.
        max_faces: keep at most this many faces per image (best first); None keeps all.

    Raises:
        FileNotFoundError: no such model file or name.
        ValueError: a file that is not a model, or a bad argument.
    """

    def __init__(
        self,
        model: str | Path | None = None,
        *,
        min_score: float = 0.5,
        img_size: int | None = None,
        max_faces: int | None = None,
    ) -> None:
        from facedet.runtime import load_detector

        if not 0.0 <= min_score <= 1.0:
            raise ValueError(f"min_score must be between 0 and 1, got {min_score}")
        self.min_score = min_score
        self.max_faces = max_faces
        self._detector = load_detector(model, img_size=img_size, post=PostProcess(score_threshold=min_score))
        self.name: str = self._detector.name

    @property
    def img_size(self) -> int | None:
        """The network input size in pixels (None for a peer, which runs at each image's own size)."""
        return self._detector.img_size

    def detect(self, image: NDArray[np.uint8] | str | Path) -> list[Face]:
        """Faces in one image, best first.

        Args:
            image: BGR uint8 array (H, W, 3) as OpenCV reads it, or an image file path.

        Raises:
            ValueError: the file cannot be read as an image, or the array is not (H, W, 3) uint8.
        """
        if isinstance(image, str | Path):
            loaded = read_image(image)
            if isinstance(loaded, str):
                raise ValueError(f"{image}: {loaded}")
            image = loaded
        if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            got = f"{image.dtype} {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
            raise ValueError(f"image must be a BGR uint8 array of shape (H, W, 3) or a path, got {got}")
        detections = self._detector.detect(image).filter(self.min_score, self.max_faces)
        return faces_from(detections)

    def __repr__(self) -> str:
        return f"Detector({self.name!r}, min_score={self.min_score}, img_size={self.img_size})"
