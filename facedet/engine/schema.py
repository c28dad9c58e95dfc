"""The integer network as plain numpy layers, and its mapping to/from the ``.fdet`` manifest.

Torch-free. The exporter (``facedet.export``) and the random fixture (``facedet.testing``)
build these layers; the engine compiles them. Three layer kinds:

- ``ThresholdConv`` (IFQ / DupNet blocks): integer kernel on integer inputs, then per channel
  the code ``#{k : acc >= T_k}`` (or ``acc <= T_k`` where ``down``), then 2x2 max-pool on codes.
  The *stored* kernel is kept: binary bits (``w > 0``) or int8; duplicated weight channels are
  stored once and duplicated input maps keep their ``d * Cin`` binary channels.
- ``RequantConv`` (8-bit Tiny-YOLO): int8 kernel, int32 bias, then the fixed-point leaky
  requantization ``clip(round(z * m / 2^shift), -128, 127)`` with ``m`` per channel and sign of z.
- ``Head``: integer 1x1 kernel, then ``raw = float32(acc) * scale + bias`` in float32 (two ops).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from facedet.config import ConvSpec, ModelConfig
from facedet.engine.bounds import INT16_MAX

INT = NDArray[np.integer]


@dataclass
class ThresholdConv:
    """One folded quantized block. Shapes: weight (Cs_out, Cs_in, k, k) stored kernel (values
    +-1 for binary, -127..127 for int8); thresholds (Cout, levels) integers; down (Cout,) bool."""

    name: str
    in_channels: int
    out_channels: int
    kernel: int
    pool: str
    weight_kind: str
    dup_weight: int
    dup_axis: str
    dup_input: int
    input_max: int  # largest input value: 255 for pixels, the top code for codes
    bound: int  # accumulator bound; decides int16 vs int32 thresholds
    weight: INT
    thresholds: INT
    down: NDArray[np.bool_]

    @classmethod
    def for_spec(
        cls,
        name: str,
        spec: ConvSpec,
        dup_axis: str,
        in_channels: int,
        input_max: int,
        weight: INT,
        thresholds: INT,
        down: NDArray[np.bool_],
        bound: int,
    ) -> ThresholdConv:
        """The block a model config's layer ``spec`` describes; ``bound`` is its accumulator bound
        (``facedet.engine.bounds.layer_accumulator_bound``, the one its thresholds were folded with)."""
        return cls(
            name=name,
            in_channels=in_channels,
            out_channels=spec.out_channels,
            kernel=spec.kernel,
            pool=spec.pool,
            weight_kind=spec.weight,
            dup_weight=spec.dup_weight,
            dup_axis=dup_axis,
            dup_input=spec.dup_input,
            input_max=input_max,
            bound=bound,
            weight=weight,
            thresholds=thresholds,
            down=down,
        )

    def effective_weight(self) -> NDArray[np.int64]:
        """(Cout, Cin, k, k) kernel on the non-duplicated input (what torch's conv sees)."""
        w = self.weight.astype(np.int64)
        if self.dup_weight > 1 and self.dup_axis == "in":
            w = np.tile(w, (1, self.dup_weight, 1, 1))
        elif self.dup_weight > 1:
            w = np.tile(w, (self.dup_weight, 1, 1, 1))
        if self.dup_input > 1:
            w = w.reshape(self.out_channels, self.dup_input, self.in_channels, self.kernel, self.kernel).sum(1)
        return w


@dataclass
class RequantConv:
    """One 8-bit conv block. weight (Cout, Cin, k, k) int8; bias (Cout,) int32 in accumulator
    units; multiplier (2, Cout) int32 for z >= 0 / z < 0; shift (Cout,) int8 (right shift)."""

    name: str
    in_channels: int
    out_channels: int
    kernel: int
    pool: str
    input_max: int
    weight: INT
    bias: INT
    multiplier: INT
    shift: INT


@dataclass
class Head:
    """Detection head. weight (Cout, Cin * dup_input, 1, 1) stored kernel; scale, bias (Cout,) float32."""

    in_channels: int
    out_channels: int
    weight_kind: str
    dup_input: int
    input_max: int
    weight: INT
    scale: NDArray[np.float32]
    bias: NDArray[np.float32]
    name: str = "head"

    def effective_weight(self) -> NDArray[np.int64]:
        w = self.weight.astype(np.int64)
        if self.dup_input > 1:
            w = w.reshape(self.out_channels, self.dup_input, self.in_channels, 1, 1).sum(1)
        return w


Layer = ThresholdConv | RequantConv


def _stored_weight(kind: str, weight: INT) -> NDArray[Any]:
    # Binary weights go to disk as bits (True = +1); the file packs bool arrays 8 per byte.
    return weight > 0 if kind == "binary" else weight.astype(np.int8)


def _load_weight(kind: str, stored: NDArray[Any]) -> NDArray[np.int8]:
    return np.where(stored, 1, -1).astype(np.int8) if kind == "binary" else stored.astype(np.int8)


def to_manifest(
    config: ModelConfig,
    layers: list[Layer],
    head: Head,
    metrics: dict[str, Any] | None = None,
    provenance: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], dict[str, NDArray[Any]]]:
    """(manifest, arrays) for ``facedet.model_file.write_model_file``."""
    arrays: dict[str, NDArray[Any]] = {}
    table: list[dict[str, Any]] = []
    for layer in layers:
        entry: dict[str, Any] = {
            "name": layer.name,
            "in": layer.in_channels,
            "out": layer.out_channels,
            "k": layer.kernel,
            "pool": layer.pool,
            "input_max": layer.input_max,
        }
        if isinstance(layer, ThresholdConv):
            entry |= {
                "op": "conv_threshold",
                "weight": layer.weight_kind,
                "dup_weight": layer.dup_weight,
                "dup_axis": layer.dup_axis,
                "dup_input": layer.dup_input,
                "bound": layer.bound,
            }
            dtype = np.int16 if layer.bound <= INT16_MAX else np.int32
            info = np.iinfo(dtype)
            if layer.thresholds.min() < info.min or layer.thresholds.max() > info.max:
                raise ValueError(f"{layer.name}: thresholds do not fit {np.dtype(dtype).name}")
            arrays[f"{layer.name}.w"] = _stored_weight(layer.weight_kind, layer.weight)
            arrays[f"{layer.name}.t"] = layer.thresholds.astype(dtype)
            arrays[f"{layer.name}.dir"] = np.asarray(layer.down, bool)
        else:
            entry["op"] = "conv_requant"
            arrays[f"{layer.name}.w"] = layer.weight.astype(np.int8)
            arrays[f"{layer.name}.b"] = layer.bias.astype(np.int32)
            arrays[f"{layer.name}.m"] = layer.multiplier.astype(np.int32)
            arrays[f"{layer.name}.s"] = layer.shift.astype(np.int8)
        table.append(entry)
    table.append(
        {
            "name": head.name,
            "op": "head",
            "in": head.in_channels,
            "out": head.out_channels,
            "k": 1,
            "weight": head.weight_kind,
            "dup_input": head.dup_input,
            "input_max": head.input_max,
        }
    )
    arrays["head.w"] = _stored_weight(head.weight_kind, head.weight)
    arrays["head.scale"] = np.asarray(head.scale, np.float32)
    arrays["head.bias"] = np.asarray(head.bias, np.float32)
    manifest: dict[str, Any] = {
        "format": "facedet-int",
        "name": config.name,
        "model_config": config.to_dict(),
        "input": {
            "size": config.img_size,
            "channels": "BGR",
            "dtype": "uint8",
            "pixel_scale": config.pixel_scale,
            "letterbox_value": config.letterbox_value,
        },
        "anchors": [list(a) for a in config.anchors],
        "stride": config.stride,
        "layers": table,
    }
    if metrics:
        manifest["metrics"] = metrics
    if provenance:
        manifest["provenance"] = provenance
    return manifest, arrays


def from_manifest(manifest: dict[str, Any], arrays: dict[str, NDArray[Any]]) -> tuple[list[Layer], Head]:
    """Inverse of ``to_manifest``: the numpy layers of a model file (KeyError on a malformed table)."""
    layers: list[Layer] = []
    head: Head | None = None
    for entry in manifest["layers"]:
        name, op = entry["name"], entry["op"]
        if op == "conv_threshold":
            thresholds = arrays[f"{name}.t"].astype(np.int64)
            layers.append(
                ThresholdConv(
                    name=name,
                    in_channels=entry["in"],
                    out_channels=entry["out"],
                    kernel=entry["k"],
                    pool=entry["pool"],
                    weight_kind=entry["weight"],
                    dup_weight=entry["dup_weight"],
                    dup_axis=entry["dup_axis"],
                    dup_input=entry["dup_input"],
                    input_max=entry["input_max"],
                    bound=entry["bound"],
                    weight=_load_weight(entry["weight"], arrays[f"{name}.w"]),
                    thresholds=thresholds,
                    down=arrays[f"{name}.dir"].astype(bool),
                )
            )
        elif op == "conv_requant":
            layers.append(
                RequantConv(
                    name=name,
                    in_channels=entry["in"],
                    out_channels=entry["out"],
                    kernel=entry["k"],
                    pool=entry["pool"],
                    input_max=entry["input_max"],
                    weight=arrays[f"{name}.w"].astype(np.int8),
                    bias=arrays[f"{name}.b"].astype(np.int64),
                    multiplier=arrays[f"{name}.m"].astype(np.int64),
                    shift=arrays[f"{name}.s"].astype(np.int64),
                )
            )
        elif op == "head":
            head = Head(
                in_channels=entry["in"],
                out_channels=entry["out"],
                weight_kind=entry["weight"],
                dup_input=entry["dup_input"],
                input_max=entry["input_max"],
                weight=_load_weight(entry["weight"], arrays["head.w"]),
                scale=arrays["head.scale"].astype(np.float32),
                bias=arrays["head.bias"].astype(np.float32),
            )
        else:
            raise ValueError(f"unknown layer op {op!r}")
    if head is None:
        raise ValueError("the layer table has no head")
    return layers, head
