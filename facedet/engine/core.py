"""``IntEngine``: runs an integer model file with numpy and OpenCV only.

Per layer (the folded network of docs/method.md §3-4), on NHWC float32 maps holding integers:

1. duplicated weight channels, input axis: sum the d input-channel groups, then convolve with the
   stored (d times smaller) kernel; output axis: convolve with the stored filters once and
   replicate the outputs d times. Duplicated input maps: one conv with the summed kernel.
2. ``acc`` = exact integer convolution (``ops.Conv``: float32 BLAS, exact below 2^24).
3. channels compared as ``acc <= T`` are negated (in the kernel, or after replication for the
   output axis), so every comparison is ``acc >= T``; the code is then a non-decreasing function
   of acc, hence max-pooling the accumulator first and thresholding after gives the same codes
   as thresholding then pooling (4x fewer comparisons after a stride-2 pool).
4. codes ``#{k : acc >= T_k}``; int8 layers: fixed-point requantization, also monotone.
5. head: ``raw = float32(acc) * scale`` then ``raw + bias`` in float32, exactly as the torch
   eval model computes it; decoding and NMS are ``facedet.anchors.decode``.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from facedet.anchors import PostProcess, decode
from facedet.boxes import letterbox
from facedet.config import ModelConfig
from facedet.detections import Detections
from facedet.engine.native import NativeNet, NativeUnsupported, resolve_engine, warn_once
from facedet.engine.ops import F32, Conv, pool, requantize, threshold_codes
from facedet.engine.schema import Head, Layer, RequantConv, ThresholdConv, from_manifest
from facedet.engine.validate import validate_model
from facedet.model_file import ModelFileError, array_nbytes, decode_model_file, read_model_bytes


class _CompiledThreshold:
    def __init__(self, layer: ThresholdConv) -> None:
        self.layer = layer
        sign = np.where(layer.down, -1, 1)  # (Cout,)
        self.group = layer.dup_weight if layer.dup_axis == "in" and layer.dup_weight > 1 else 1
        self.replicate = layer.dup_weight if layer.dup_axis == "out" and layer.dup_weight > 1 else 1
        if self.group > 1:
            # The stored kernel, on the summed input groups; output channels are all distinct.
            kernel = layer.weight.astype(np.int64) * sign[:, None, None, None]
            input_max = layer.input_max * self.group
        elif self.replicate > 1:
            kernel = layer.weight.astype(np.int64)  # stored filters, replicated after the conv
            input_max = layer.input_max
        else:
            kernel = layer.effective_weight() * sign[:, None, None, None]  # negation folded in
            input_max = layer.input_max
        self.conv = Conv(kernel, input_max)
        # Flip after replication only where the filters are shared (output-axis duplication).
        self.sign = sign.astype(np.float32) if self.replicate > 1 and layer.down.any() else None
        self.thresholds = np.ascontiguousarray((layer.thresholds * sign[:, None]).T, np.float32)  # (levels, Cout)

    def __call__(self, x: F32) -> F32:
        if self.group > 1:
            height, width, channels = x.shape
            x = x.reshape(height, width, self.group, channels // self.group).sum(axis=2)
        acc: NDArray[Any] = self.conv(x)  # (H, W, Cs_out)
        if self.replicate > 1:
            acc = np.tile(acc, (1, 1, self.replicate))  # out channel o uses stored filter o % Cs_out
        if self.sign is not None:
            acc = acc * self.sign
        acc = pool(acc, self.layer.pool)
        return threshold_codes(acc, self.thresholds)


class _CompiledRequant:
    def __init__(self, layer: RequantConv) -> None:
        self.layer = layer
        self.conv = Conv(layer.weight, layer.input_max)

    def __call__(self, x: F32) -> F32:
        acc = pool(self.conv(x), self.layer.pool)  # requantization is monotone: pool first
        z = acc.astype(np.int64) + self.layer.bias
        out = requantize(z, self.layer.multiplier, self.layer.shift)
        return np.clip(out, -128, 127).astype(np.float32)


class _CompiledHead:
    def __init__(self, head: Head) -> None:
        self.conv = Conv(head.effective_weight(), head.input_max)
        self.scale = head.scale.astype(np.float32)
        self.bias = head.bias.astype(np.float32)

    def __call__(self, x: F32) -> F32:
        acc = self.conv(x).astype(np.float32)  # exact integers (|acc| < 2^24)
        raw = acc * self.scale  # two separate float32 ops, as the torch eval model does
        raw = raw + self.bias
        return np.ascontiguousarray(raw.transpose(2, 0, 1))  # (A*5, H, W)


class IntEngine:
    """An integer face detector loaded from a ``.fdet`` file (see ``facedet.model_file``); a
    ``facedet.detections.Detector``.

    Attributes:
        config: the model config (``img_size`` replaced when overridden).
        name: model family name.
        stored_bytes: bytes of the stored arrays (weights, thresholds, head affine).
        macs: multiply-accumulates per frame of the computation as run (reduced forms).
        info: dict with name, kind, format_version, file_bytes, stored_bytes, input_size,
            sha256, macs, metrics, provenance.
    """

    def __init__(
        self,
        manifest: dict[str, Any],
        arrays: dict[str, NDArray[Any]],
        img_size: int | None = None,
        post: PostProcess | None = None,
        source: str = "<memory>",
        file_bytes: int | None = None,
        sha256: str | None = None,
        engine: str | None = None,
    ) -> None:
        # Every field and array shape is checked before anything is tiled or allocated.
        validate_model(manifest, arrays, source, img_size)
        try:
            config = ModelConfig.from_dict(manifest["model_config"])
            self.layers, self.head = from_manifest(manifest, arrays)
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelFileError(f"{source}: malformed model manifest: {exc}") from exc
        size = img_size or manifest.get("input", {}).get("size", config.img_size)
        self.config = config.with_(img_size=size)
        self.manifest = manifest
        self.post = post or PostProcess()
        self.name = config.name
        self.stored_bytes = sum(array_nbytes(manifest).values())
        self.macs = self._count_macs()
        self.kind = "int8" if any(isinstance(layer, RequantConv) for layer in self.layers) else "threshold"
        try:  # Conv refuses kernels whose products are not exact in float32
            self._compiled = [
                _CompiledThreshold(layer) if isinstance(layer, ThresholdConv) else _CompiledRequant(layer)
                for layer in self.layers
            ]
            self._head = _CompiledHead(self.head)
        except ValueError as exc:
            raise ModelFileError(f"{source}: model cannot run: {exc}") from exc
        self.engine, self.isa, self._native = self._load_native(engine)
        self.info: dict[str, Any] = {
            "name": self.name,
            "kind": self.kind,
            "source": source,
            "format_version": manifest.get("format_version"),
            "file_bytes": file_bytes,
            "stored_bytes": self.stored_bytes,
            "input_size": self.config.img_size,
            "stride": self.config.stride,
            "sha256": sha256,
            "macs": self.macs,
            "engine": self.engine,
            "isa": self.isa,
            "metrics": manifest.get("metrics", {}),
            "provenance": manifest.get("provenance", {}),
        }

    def _load_native(self, engine: str | None) -> tuple[str, str | None, NativeNet | None]:
        # (engine, isa, packed native layers); numpy where asked, not built, or not exact for this model
        if resolve_engine(engine) == "numpy":
            return "numpy", None, None
        try:
            native = NativeNet(self.layers, self.head)
        except NativeUnsupported as exc:
            warn_once(f"{self.name}: the native engine cannot run this model ({exc}); using the numpy engine")
            return "numpy", None, None
        return "native", native.isa, native

    @classmethod
    def load(
        cls,
        path: str | Path,
        img_size: int | None = None,
        post: PostProcess | None = None,
        engine: str | None = None,
    ) -> IntEngine:
        """Load and validate a model file; ``engine`` is ``native``, ``numpy`` or None (see ``resolve_engine``).

        Raises:
            ModelFileError: missing, truncated, corrupted, foreign or newer-version file.
        """
        path = Path(path)
        data = read_model_bytes(path)
        manifest, arrays = decode_model_file(data, str(path))
        digest = hashlib.sha256(data).hexdigest()
        return cls(manifest, arrays, img_size, post, str(path), file_bytes=len(data), sha256=digest, engine=engine)

    def _count_macs(self) -> int:
        # MACs of the reduced computation actually run, at the engine's input size.
        size, total = self.config.img_size, 0
        for layer in self.layers:
            conv_macs = int(np.prod(layer.weight.shape[:2])) * layer.kernel**2
            if isinstance(layer, ThresholdConv) and layer.dup_input > 1:
                conv_macs = layer.out_channels * layer.in_channels * layer.kernel**2
            total += conv_macs * size * size
            if layer.pool == "max2":
                size //= 2
        return total + self.head.out_channels * self.head.in_channels * size * size

    @property
    def img_size(self) -> int:
        """The square network input in pixels (``Detector`` protocol)."""
        return self.config.img_size

    def _input(self, letterboxed: NDArray[Any]) -> NDArray[Any]:
        size = self.config.img_size
        if letterboxed.shape != (size, size, 3):
            raise ValueError(f"expected a ({size}, {size}, 3) letterboxed image, got {letterboxed.shape}")
        return letterboxed

    def layer_outputs(self, letterboxed: NDArray[np.uint8]) -> list[NDArray[Any]]:
        """Each block's output after pooling as (C, H, W) codes (uint8, or int8 for 8-bit models),
        then the raw head (A*5, H, W) float32 — the same list as ``FaceDetector.forward_layers``."""
        x = self._input(letterboxed)
        outputs: list[NDArray[Any]] = []
        code_dtype = np.int8 if self.kind == "int8" else np.uint8
        for layer in self._compiled:
            x = layer(x)
            outputs.append(x.transpose(2, 0, 1).astype(code_dtype))
        outputs.append(self._head(x))
        return outputs

    def raw(self, letterboxed: NDArray[np.uint8]) -> F32:
        """Raw head map (A*5, H, W) float32 of one (S, S, 3) uint8 letterboxed BGR image."""
        if self._native is not None:
            return self._native.raw(self._input(letterboxed))
        x = self._input(letterboxed).astype(np.float32)
        for layer in self._compiled:
            x = layer(x)
        return self._head(x)

    def detect(self, image_bgr: NDArray[np.uint8], post: PostProcess | None = None) -> Detections:
        """Faces in an (H, W, 3) uint8 BGR image, in its pixels."""
        boxed, box = letterbox(image_bgr, self.config.img_size, self.config.letterbox_value)
        return decode(self.raw(boxed), self.config.anchors, self.config.stride, box, post or self.post)

    def __repr__(self) -> str:
        size, stored = self.config.img_size, self.stored_bytes
        return f"IntEngine({self.name!r}, {self.kind}, input {size}, {stored} stored bytes, {self.engine})"


__all__ = ["IntEngine", "Layer"]
