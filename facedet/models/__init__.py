"""Model registry: the three detector families as ``ModelConfig`` presets, and ``build_model``.

Architecture choices (the IFQ-Net and DupNet papers publish no layer tables, so these are ours within
their budgets; docs/method.md; sizes are checked by tests/test_models.py):
- tiny-yolo: the YOLOv2-tiny topology (darknet yolov2-tiny-voc.cfg) with a one-class head.
- ifq-tinier-yolo: Tiny-YOLO narrowed to 16-32-64-128-256-256-256 so that 1-bit weights fit
  240.9 KiB; 8-bit first layer (it sees pixels) and 8-bit head (it produces box offsets), as
  HWGQ/IFQ-style networks keep the first and last layers in higher precision.
- dupnet-tinier-yolo: the IFQ topology made 6.5x smaller with duplicated weight channels on the
  weight-heavy deep layers (factor 2 to 16, input axis: the reduced conv is d times cheaper) and
  duplicated input maps on the quantization-sensitive first layer and head (factor 4: binary
  weights act as 5-level weights), so no 8-bit weights remain.
"""

from __future__ import annotations

from collections.abc import Callable

from facedet.config import HWGQ_STEPS, ConvSpec, ModelConfig

# Default anchors (pixels at the network input): k-means (1 - IoU, k=5, seed 0) on the valid
# WIDER Face train boxes of the shared copy letterboxed to 320 px, keeping faces of at least 12 px
# (smaller ones are ignore regions at stride 32). `facedet train --anchors auto` recomputes them.
DEFAULT_ANCHORS: tuple[tuple[float, float], ...] = (
    (13.3, 16.0),
    (18.0, 22.7),
    (24.7, 32.7),
    (36.7, 48.7),
    (69.3, 92.3),
)
DEFAULT_IMG_SIZE = 320


def tiny_yolo_config(
    img_size: int = DEFAULT_IMG_SIZE, anchors: tuple[tuple[float, float], ...] = DEFAULT_ANCHORS
) -> ModelConfig:
    widths = (16, 32, 64, 128, 256, 512, 1024, 1024)
    pools = ("max2", "max2", "max2", "max2", "max2", "max2s1", "none", "none")
    return ModelConfig(
        name="tiny-yolo",
        img_size=img_size,
        anchors=anchors,
        layers=tuple(ConvSpec(w, pool=p) for w, p in zip(widths, pools, strict=True)),
        activation="leaky",
        head_weight="float",
    )


_TINIER_WIDTHS = (16, 32, 64, 128, 256, 256, 256)
_TINIER_POOLS = ("max2", "max2", "max2", "max2", "max2", "max2s1", "none")


def ifq_tinier_yolo_config(
    img_size: int = DEFAULT_IMG_SIZE, anchors: tuple[tuple[float, float], ...] = DEFAULT_ANCHORS
) -> ModelConfig:
    weights = ("int8",) + ("binary",) * 6
    return ModelConfig(
        name="ifq-tinier-yolo",
        img_size=img_size,
        anchors=anchors,
        layers=tuple(
            ConvSpec(w, pool=p, weight=k) for w, p, k in zip(_TINIER_WIDTHS, _TINIER_POOLS, weights, strict=True)
        ),
        activation="hwgq",
        act_bits=2,
        act_step=HWGQ_STEPS[2],
        head_weight="int8",
    )


def dupnet_tinier_yolo_config(
    img_size: int = DEFAULT_IMG_SIZE,
    anchors: tuple[tuple[float, float], ...] = DEFAULT_ANCHORS,
    dup_weight: tuple[int, ...] = (1, 1, 1, 2, 8, 16, 16),
    dup_input_first: int = 4,
    dup_input_head: int = 4,
    dup_axis: str = "in",
) -> ModelConfig:
    layers = []
    for i, (width, pool_kind, d) in enumerate(zip(_TINIER_WIDTHS, _TINIER_POOLS, dup_weight, strict=True)):
        layers.append(
            ConvSpec(width, pool=pool_kind, weight="binary", dup_weight=d, dup_input=dup_input_first if i == 0 else 1)
        )
    return ModelConfig(
        name="dupnet-tinier-yolo",
        img_size=img_size,
        anchors=anchors,
        layers=tuple(layers),
        activation="hwgq",
        act_bits=2,
        act_step=HWGQ_STEPS[2],
        head_weight="binary",
        head_dup_input=dup_input_head,
        dup_axis=dup_axis,
    )


# DupNet variants to compare on WIDER val within the same 36.9 KiB (docs/method.md §3). The preset
# sums conv5-7's inputs down to 16 channels (input axis, factors 8/16); these keep more of them.
def dupnet_out_axis_config(
    img_size: int = DEFAULT_IMG_SIZE, anchors: tuple[tuple[float, float], ...] = DEFAULT_ANCHORS
) -> ModelConfig:
    """The preset's factors tiled along output channels: every filter sees all its inputs, and
    each stored filter serves d outputs (same stored bytes)."""
    config = dupnet_tinier_yolo_config(img_size, anchors, dup_axis="out")
    return config.with_(name="dupnet-tinier-yolo-out")


def dupnet_conv5x4_config(
    img_size: int = DEFAULT_IMG_SIZE, anchors: tuple[tuple[float, float], ...] = DEFAULT_ANCHORS
) -> ModelConfig:
    """Factor 4 on conv4 and conv5 (preset: 2 and 8), so conv5 keeps 32 summed input channels;
    2,304 stored bytes more than the preset."""
    config = dupnet_tinier_yolo_config(img_size, anchors, dup_weight=(1, 1, 1, 4, 4, 16, 16))
    return config.with_(name="dupnet-tinier-yolo-c5x4")


MODELS: dict[str, Callable[..., ModelConfig]] = {
    "tiny-yolo": tiny_yolo_config,
    "ifq-tinier-yolo": ifq_tinier_yolo_config,
    "dupnet-tinier-yolo": dupnet_tinier_yolo_config,
    "dupnet-tinier-yolo-out": dupnet_out_axis_config,
    "dupnet-tinier-yolo-c5x4": dupnet_conv5x4_config,
}


def model_config(name: str, **kwargs: object) -> ModelConfig:
    """The preset config of a family by name; unknown names raise ValueError listing the valid ones."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {sorted(MODELS)}")
    return MODELS[name](**kwargs)


def build_model(config: ModelConfig):  # -> FaceDetector (import kept lazy: torch)
    """Build the torch module for a config."""
    from facedet.models.detector import FaceDetector

    return FaceDetector(config)
