"""Write an integer model (.fdet, or a packaged model name) as a standard ONNX file, and check it.

The graph is built from the integer model file, which holds the exact integer kernels and
thresholds (``facedet.onnx_graph``). The file carries what the runtime needs around the graph as
JSON in the ONNX metadata under ``facedet``: the model config (anchors, stride, input size,
letterbox value), stored bytes and MACs, the source file's SHA-256, and one note per layer saying
which ONNX form it took. After writing, when onnxruntime is installed, the graph runs on a few
synthetic letterboxed images and its raw head map must equal the numpy engine's bit for bit.

Needs the ``onnx`` package (the ``[onnx]`` extra); the check also needs ``onnxruntime``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from facedet.atomic import write_atomically
from facedet.engine import IntEngine
from facedet.model_file import is_model_file
from facedet.onnx_detector import METADATA_KEY, SUPPORTED_FORMAT
from facedet.paths import resolve_model

FORMAT, FORMAT_VERSION = SUPPORTED_FORMAT


@dataclass
class OnnxExport:
    """What ``export_onnx`` wrote: the file, the graph's conv MACs at the input size, the per-layer
    notes, and how many images the onnxruntime check compared (0 when onnxruntime is absent)."""

    path: Path
    macs: int
    notes: list[str]
    checked_images: int


def metadata(engine: IntEngine, macs: int, notes: list[str], sha256: str | None) -> dict[str, Any]:
    """The JSON stored under ``facedet`` in the ONNX metadata (read by ``facedet.onnx_detector``)."""
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "name": engine.name,
        "kind": engine.kind,
        "model_config": engine.config.to_dict(),
        "input": {"layout": "NHWC", "channels": "BGR", "dtype": "uint8", "size": engine.config.img_size},
        "stored_bytes": engine.stored_bytes,
        "macs": macs,
        "source_sha256": sha256,
        "layers": notes,
    }


def check_images(size: int, letterbox_value: int, seed: int = 0) -> list[NDArray[np.uint8]]:
    """(size, size, 3) uint8 test inputs: uniform noise, smooth noise with a letterbox band, flat grey."""
    import cv2

    rng = np.random.default_rng(seed)
    noise = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    coarse = rng.integers(0, 256, (max(size // 16, 2), max(size // 16, 2), 3), dtype=np.uint8)
    smooth = np.asarray(cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC), np.uint8)
    smooth[: size // 5] = letterbox_value  # a letterbox band, as real inputs have
    flat = np.full((size, size, 3), letterbox_value, np.uint8)
    return [noise, smooth, flat]


def compare_with_engine(model_bytes: bytes, engine: IntEngine, images: list[NDArray[np.uint8]]) -> None:
    """Raise ValueError unless onnxruntime's raw head map equals the numpy engine's on every image."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])
    for index, image in enumerate(images):
        got = session.run(["raw"], {"image": image[None]})[0][0]
        want = engine.raw(image)
        if got.shape != want.shape or not np.array_equal(got, want):
            worst = float(np.abs(got - want).max()) if got.shape == want.shape else float("nan")
            raise ValueError(f"ONNX graph differs from the integer engine on check image {index} (max |diff| {worst})")


def export_onnx(source: str | Path, out: str | Path, img_size: int | None = None, check: bool = True) -> OnnxExport:
    """Write the integer model ``source`` (a .fdet path or a packaged model name) as ONNX at ``out``.

    Args:
        source: integer model file or model name (``dupnet-tinier-yolo``).
        out: the .onnx file to write (replaced atomically).
        img_size: default input size stored in the metadata (the graph itself takes any multiple of
            the stride); None keeps the model file's.
        check: run the onnxruntime-vs-numpy check when onnxruntime is importable.

    Raises:
        FileNotFoundError: no such file or model name.
        ValueError: not an integer model file (``ModelFileError``), a model the graph cannot
            express, or an ONNX result that differs from the integer engine.
    """
    import onnx

    from facedet.onnx_graph import build_graph

    path = resolve_model(str(source))
    if not is_model_file(path):
        raise ValueError(f"{path}: not an integer model file (.fdet); export a checkpoint to .fdet first")
    engine = IntEngine.load(path, img_size=img_size, engine="numpy")
    try:
        model, graph = build_graph(engine.layers, engine.head, engine.name, engine.config.img_size)
    except ValueError as exc:
        raise ValueError(f"{path}: this model cannot be written as ONNX: {exc}") from None
    sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
    onnx.helper.set_model_props(model, {METADATA_KEY: json.dumps(metadata(engine, graph.macs, graph.notes, sha256))})
    model.doc_string = f"facedet {engine.name}: letterboxed uint8 NHWC BGR image -> raw head map (decode outside)"
    onnx.checker.check_model(model, full_check=True)
    data = model.SerializeToString()
    checked = 0
    if check:
        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            pass
        else:
            images = check_images(engine.config.img_size, engine.config.letterbox_value)
            compare_with_engine(data, engine, images)
            checked = len(images)

    def write(tmp: str) -> None:
        Path(tmp).write_bytes(data)

    target = write_atomically(out, write)
    return OnnxExport(target, graph.macs, graph.notes, checked)
