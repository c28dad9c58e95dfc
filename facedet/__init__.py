"""facedet: tiny face detectors (Tiny-YOLO, IFQ-Tinier-YOLO, DupNet-Tinier-YOLO).

Python API (see ``facedet.api``)::

    from facedet import Detector
    faces = Detector("dupnet-tinier-yolo").detect("photo.jpg")   # or a BGR uint8 array
    faces[0].box, faces[0].score                                  # (x, y, width, height), 0..1

This file imports nothing at import time on purpose (``Detector`` and ``Face`` load on first
use): importing a torch-free core module must never pull in a training module.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.2.0"
__all__ = ["Detector", "Face", "__version__"]

if TYPE_CHECKING:
    from facedet.api import Detector, Face


def __getattr__(name: str) -> Any:
    if name in ("Detector", "Face"):
        from facedet import api

        return getattr(api, name)
    raise AttributeError(f"module 'facedet' has no attribute {name!r}")
