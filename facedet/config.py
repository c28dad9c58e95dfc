"""Model configuration: frozen dataclasses that travel inside checkpoints and integer models.

Torch-free (stdlib only): the exporter, the integer engine and the service all read it.

A model is a stack of 3x3 (or 1x1) convolutions, each optionally followed by a 2x2 max-pool,
then a 1x1 detection head with ``len(anchors) * 5`` outputs per grid cell laid out as
``(anchor, [tx, ty, tw, th, objectness])``. The grid stride is ``2 ** (number of stride-2 pools)``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from typing import Any

POOLS = ("none", "max2", "max2s1")  # none | 2x2 stride 2 | 2x2 stride 1 (pad right/bottom, darknet)
WEIGHT_KINDS = ("float", "binary", "int8")
ACTIVATIONS = ("leaky", "hwgq")
DUP_AXES = ("in", "out")
# Training stages of a quantized model (facedet.models.precision): float weights and relaxed
# activations, binary weights and relaxed activations, the deployed precision.
PRECISIONS = ("float", "binary-weights", "full")

# HWGQ steps (Cai et al., CVPR 2017; the values of the authors' code, docs/method.md §3): 2 bits -> levels
# {0, .538, 1.076, 1.614}.
HWGQ_STEPS = {1: 0.799, 2: 0.538, 3: 0.3217, 4: 0.185}


@dataclass(frozen=True)
class ConvSpec:
    """One backbone convolution (+ batch-norm + activation, + optional pooling).

    Attributes:
        out_channels: output channels of the full (expanded) convolution.
        kernel: square kernel size (3 or 1); padding is ``kernel // 2``.
        pool: pooling after the activation, one of ``POOLS``.
        weight: weight kind, one of ``WEIGHT_KINDS``.
        dup_weight: duplicated-weight-channel factor d (DupNet part 1): only ``1/d`` of the
            kernel is stored and tiled d times along ``ModelConfig.dup_axis``.
        dup_input: duplicated-input-map factor d (DupNet part 2): the input is concatenated d
            times along channels and convolved with ``d * in_channels`` weight channels.
    """

    out_channels: int
    kernel: int = 3
    pool: str = "none"
    weight: str = "float"
    dup_weight: int = 1
    dup_input: int = 1

    def __post_init__(self) -> None:
        if self.pool not in POOLS:
            raise ValueError(f"pool must be one of {POOLS}, got {self.pool!r}")
        if self.weight not in WEIGHT_KINDS:
            raise ValueError(f"weight must be one of {WEIGHT_KINDS}, got {self.weight!r}")
        if self.kernel not in (1, 3):
            raise ValueError(f"kernel must be 1 or 3, got {self.kernel}")
        if self.dup_weight < 1 or self.dup_input < 1:
            raise ValueError("duplication factors must be >= 1")


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a detector (and nothing about how it was trained).

    Attributes:
        name: family name, one of the builders in ``facedet.models`` (e.g. ``"tiny-yolo"``).
        img_size: square network input size in pixels (a multiple of the stride).
        anchors: anchor (width, height) pairs in pixels of the network input.
        layers: the backbone convolutions, in order.
        activation: ``"leaky"`` (float, slope 0.1) or ``"hwgq"`` (k-bit uniform quantizer).
        act_bits: activation bits for ``"hwgq"``.
        act_step: quantizer step for ``"hwgq"`` (value of one code unit).
        head_weight: weight kind of the 1x1 detection head.
        head_dup_input: duplicated-input factor of the head.
        dup_axis: axis along which ``dup_weight`` tiles stored weights: ``"in"`` (input
            channels; the reduced form sums input groups, then convolves a d-times smaller
            kernel) or ``"out"`` (output channels; one stored filter serves d outputs).
        pixel_scale: the network sees ``pixel * pixel_scale`` (BGR, uint8 pixels, no mean).
        letterbox_value: pad value (pixels) of the letterbox.
    """

    name: str
    img_size: int
    anchors: tuple[tuple[float, float], ...]
    layers: tuple[ConvSpec, ...]
    activation: str = "leaky"
    act_bits: int = 2
    act_step: float = HWGQ_STEPS[2]
    head_weight: str = "float"
    head_dup_input: int = 1
    dup_axis: str = "in"
    pixel_scale: float = 1.0 / 255.0
    letterbox_value: int = 114

    def __post_init__(self) -> None:
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}, got {self.activation!r}")
        if self.head_weight not in WEIGHT_KINDS:
            raise ValueError(f"head_weight must be one of {WEIGHT_KINDS}")
        if self.dup_axis not in DUP_AXES:
            raise ValueError(f"dup_axis must be one of {DUP_AXES}, got {self.dup_axis!r}")
        if self.img_size % self.stride:
            raise ValueError(f"img_size {self.img_size} is not a multiple of stride {self.stride}")
        if not self.anchors:
            raise ValueError("at least one anchor is needed")

    @property
    def stride(self) -> int:
        """Grid stride in pixels: 2 to the number of stride-2 pools."""
        return 1 << sum(1 for spec in self.layers if spec.pool == "max2")

    @property
    def num_anchors(self) -> int:
        return len(self.anchors)

    @property
    def quantized(self) -> bool:
        return self.activation == "hwgq"

    def with_(self, **changes: Any) -> ModelConfig:
        """A copy with some fields replaced (validated again)."""
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        """Rebuild from ``to_dict`` output (lists from JSON become tuples)."""
        known = {f for f in cls.__dataclass_fields__}
        # Files written before the always-empty "extra" field was removed (the weights shipped so far) carry it.
        if data.get("extra") == {}:
            data = {k: v for k, v in data.items() if k != "extra"}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown ModelConfig fields: {sorted(unknown)}")
        values = dict(data)
        values["anchors"] = tuple((float(w), float(h)) for w, h in data["anchors"])
        values["layers"] = tuple(spec if isinstance(spec, ConvSpec) else ConvSpec(**spec) for spec in data["layers"])
        return cls(**values)


# Checkpoint key of the input size to deploy at (export, detect, eval), which may differ from the
# training size: the shipped models train at 256 px and deploy at 416 px (weights/README.md).
DEPLOY_IMG_SIZE_KEY = "deploy_img_size"


def deployment_img_size(checkpoint: dict[str, Any], config: ModelConfig) -> int:
    """The checkpoint's stored deployment input size, else its training size (``config.img_size``)."""
    stored = checkpoint.get(DEPLOY_IMG_SIZE_KEY)
    return int(stored) if stored else config.img_size
