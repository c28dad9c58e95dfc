"""``OnnxDetector``: a facedet ONNX file (``facedet export MODEL --format onnx``) run by onnxruntime.

The same interface as ``IntEngine``: ``name``, ``config``, ``img_size``, ``stored_bytes``, ``macs``,
``info``, ``raw(letterboxed)`` and ``detect(image) -> Detections``. The graph computes the raw head
map only; letterboxing (``facedet.boxes.letterbox``), decoding and NMS (``facedet.anchors.decode``)
are the runtime's shared code, so an ONNX file and its ``.fdet`` give the same detections.

onnxruntime is an optional dependency (the ``[onnx]`` extra), imported when a file is loaded.
Threads: ``threads``, else ``OMP_NUM_THREADS`` (set by ``--threads``), else 1, as the integer engine.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from facedet.anchors import PostProcess, decode
from facedet.boxes import letterbox
from facedet.config import ModelConfig
from facedet.detections import Detections

SUFFIX = ".onnx"
METADATA_KEY = "facedet"  # as facedet.export_onnx writes it
SUPPORTED_FORMAT = ("facedet-onnx", 1)


def is_onnx_path(path: str | Path) -> bool:
    return Path(path).suffix.lower() == SUFFIX


def _metadata(session: Any, source: str) -> dict[str, Any]:
    text = session.get_modelmeta().custom_metadata_map.get(METADATA_KEY)
    if text is None:
        raise ValueError(
            f"{source}: an ONNX file without facedet metadata; write one with `facedet export MODEL --format onnx`"
        )
    try:
        meta: dict[str, Any] = json.loads(text)
        fmt = (meta["format"], int(meta["format_version"]))
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{source}: unreadable facedet metadata in the ONNX file ({exc})") from None
    if fmt[0] != SUPPORTED_FORMAT[0] or fmt[1] > SUPPORTED_FORMAT[1]:
        raise ValueError(f"{source}: facedet ONNX format {fmt[0]} v{fmt[1]} is not supported (this reads v1)")
    return meta


class OnnxDetector:
    """A face detector from a facedet ONNX file.

    Raises (from the constructor):
        FileNotFoundError: no such file.
        ImportError: onnxruntime is not installed.
        ValueError: not an ONNX file onnxruntime can load, no facedet metadata, or a bad ``img_size``.
    """

    def __init__(
        self,
        path: str | Path,
        img_size: int | None = None,
        post: PostProcess | None = None,
        threads: int | None = None,
    ) -> None:
        import onnxruntime as ort

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such ONNX file")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or int(os.environ.get("OMP_NUM_THREADS", "1") or 1)
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # errors only: no warnings on stderr per load
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own types (InvalidProtobuf, Fail, ...)
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ValueError(f"{path}: onnxruntime cannot load this file: {first}") from None
        meta = _metadata(self.session, str(path))
        try:
            config = ModelConfig.from_dict(meta["model_config"])
            if img_size is not None:
                config = config.with_(img_size=img_size)
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{path}: {exc}") from None
        self.config = config
        self.post = post or PostProcess()
        self.name: str = meta.get("name", config.name)
        self.stored_bytes: int | None = meta.get("stored_bytes")
        default_size = int(meta.get("input", {}).get("size", config.img_size))
        # Conv MACs scale with the input area (every pooled size divides exactly at a stride multiple).
        self.macs: int | None = int(meta["macs"] * (config.img_size / default_size) ** 2) if "macs" in meta else None
        self.engine = "onnxruntime"
        self.isa = None
        self.info: dict[str, Any] = {
            "name": self.name,
            "kind": meta.get("kind"),
            "source": str(path),
            "file_bytes": path.stat().st_size,
            "stored_bytes": self.stored_bytes,
            "input_size": config.img_size,
            "stride": config.stride,
            "macs": self.macs,
            "engine": self.engine,
            "onnxruntime": ort.__version__,
            "source_sha256": meta.get("source_sha256"),
            "layers": meta.get("layers", []),
        }

    @property
    def img_size(self) -> int:
        return self.config.img_size

    def raw(self, letterboxed: NDArray[np.uint8]) -> NDArray[np.float32]:
        """Raw head map (A*5, H, W) float32 of one (S, S, 3) uint8 letterboxed BGR image."""
        size = self.config.img_size
        if letterboxed.shape != (size, size, 3) or letterboxed.dtype != np.uint8:
            raise ValueError(f"expected a ({size}, {size}, 3) uint8 letterboxed image, got {letterboxed.shape}")
        head_map: NDArray[np.float32] = self.session.run(["raw"], {"image": letterboxed[None]})[0][0]
        return head_map

    def detect(self, image_bgr: NDArray[np.uint8], post: PostProcess | None = None) -> Detections:
        """Faces in an (H, W, 3) uint8 BGR image, in its pixels."""
        boxed, box = letterbox(image_bgr, self.config.img_size, self.config.letterbox_value)
        return decode(self.raw(boxed), self.config.anchors, self.config.stride, box, post or self.post)

    def __repr__(self) -> str:
        return f"OnnxDetector({self.name!r}, input {self.config.img_size}, onnxruntime)"


__all__ = ["OnnxDetector", "is_onnx_path"]
