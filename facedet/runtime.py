"""One entry point from "a model the user named" to a ``Detector``. Torch-free at import.

``load_detector`` accepts:

- a model name (``dupnet-tinier-yolo``, ``default``; see ``facedet.paths.resolve_model``) or an
  integer model file (``.fdet`` or any file starting with the FDET magic) -> ``IntEngine``;
- a facedet ONNX file (``.onnx``, from ``facedet export MODEL --format onnx``) -> ``OnnxDetector``
  (onnxruntime, the ``[onnx]`` extra, imported only then);
- a training checkpoint (``.pt``) -> the fake-quantized (or float) torch model through
  ``facedet.models.predict.TorchDetector``; torch is imported only then;
- a peer name ``peer:NAME`` (e.g. ``peer:haar``) -> ``facedet.peers.load_peer(NAME)``.

Every returned object follows ``facedet.detections.Detector``: ``name``, ``img_size``,
``stored_bytes``, ``macs`` (None where a peer cannot say) and ``detect(image_bgr) -> Detections``.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

from facedet.anchors import PostProcess
from facedet.detections import Detector
from facedet.model_file import SUFFIX, is_model_file
from facedet.paths import resolve_model

PEER_PREFIX = "peer:"


def load_detector(
    path_or_name: str | Path | None = None, img_size: int | None = None, post: PostProcess | None = None
) -> Detector:
    """Load a detector by file or peer name.

    Args:
        path_or_name: model name, ``.fdet`` file, ``.onnx`` file, ``.pt`` checkpoint, or ``peer:NAME``; None:
            ``FACEDET_MODEL``, else the best shipped model.
        img_size: network input size override (a multiple of the model's stride); ignored by peers.
        post: score threshold / NMS settings (models only; peers use their own).

    Returns:
        A ``facedet.detections.Detector``.

    Raises:
        FileNotFoundError: no such file or model name.
        IsADirectoryError: a folder instead of a model file.
        ValueError: a file that is neither an integer model, a facedet ONNX file nor a checkpoint
            (``ModelFileError`` and ``CheckpointError`` are ValueErrors too).
        ImportError: an ``.onnx`` file without onnxruntime installed.
    """
    text = "" if path_or_name is None else str(path_or_name)
    if text.startswith(PEER_PREFIX):
        from facedet.peers import load_peer

        return load_peer(text[len(PEER_PREFIX) :])
    path = resolve_model(text)  # a name, FACEDET_MODEL or the default; "is a directory" for a folder
    if path.suffix.lower() == ".onnx":
        from facedet.onnx_detector import OnnxDetector

        return OnnxDetector(path, img_size=img_size, post=post)
    if path.suffix == SUFFIX or is_model_file(path):
        from facedet.engine import IntEngine

        return IntEngine.load(path, img_size=img_size, post=post)
    if is_checkpoint_file(path):
        from facedet.models.predict import TorchDetector

        return TorchDetector.from_checkpoint(path, img_size=img_size, post=post)
    raise ValueError(f"{path}: not an integer model (.fdet), an ONNX file (.onnx) or a training checkpoint (.pt)")


def is_checkpoint_file(path: str | Path) -> bool:
    """A ``.pt``/``.pth``/``.ckpt`` file that is a zip archive, as ``torch.save`` writes (checked
    without torch, so a text file named ``.pt`` gets a clear error instead of a pickle message)."""
    path = Path(path)
    return path.suffix in (".pt", ".pth", ".ckpt") and zipfile.is_zipfile(path)


def describe(detector: Detector) -> dict[str, Any]:
    """name, img_size, stored_bytes and macs of a detector (None where it does not say)."""
    return {
        "name": detector.name,
        "img_size": detector.img_size,
        "stored_bytes": detector.stored_bytes,
        "macs": detector.macs,
    }
