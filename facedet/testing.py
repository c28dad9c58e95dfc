"""Test fixtures without torch: a small, valid, random integer model file.

``write_random_model`` is what the service and CLI tests load instead of a trained model. The
network is a tiny DupNet-style quantized detector (binary weights, a duplicated-input first layer
and head, one layer with duplicated weight channels, a stride-1 pool), its thresholds placed
around each channel's typical accumulator so that codes vary, and a head biased so that
``min_score=0`` always yields boxes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from facedet.config import HWGQ_STEPS, ConvSpec, ModelConfig
from facedet.engine.bounds import layer_accumulator_bound
from facedet.engine.fold import fold_thresholds
from facedet.engine.schema import Head, Layer, ThresholdConv, to_manifest
from facedet.model_file import write_model_file


def tiny_config(img_size: int = 64) -> ModelConfig:
    """A 4-block quantized config with every DupNet feature (stride 8; 64 px -> 8x8 grid)."""
    return ModelConfig(
        name="tiny-random",
        img_size=img_size,
        anchors=((8.0, 10.0), (20.0, 24.0), (40.0, 48.0)),
        layers=(
            ConvSpec(8, pool="max2", weight="binary", dup_input=2),
            ConvSpec(16, pool="max2", weight="binary"),
            ConvSpec(16, pool="max2", weight="binary", dup_weight=2),
            ConvSpec(16, pool="max2s1", weight="binary"),
        ),
        activation="hwgq",
        act_bits=2,
        act_step=HWGQ_STEPS[2],
        head_weight="binary",
        head_dup_input=2,
    )


def _random_kernel(rng: np.random.Generator, kind: str, shape: tuple[int, ...]) -> np.ndarray:
    if kind == "binary":
        return rng.choice(np.array([-1, 1], np.int64), size=shape)
    return rng.integers(-127, 128, size=shape)


def random_layers(config: ModelConfig, seed: int = 0) -> tuple[list[Layer], Head]:
    """Random integer layers for a quantized ``config``.

    Each channel's folded affine (s, b) is chosen so that y = acc * s + b spans the codes over
    the accumulator's typical range (mean input * kernel sum +- 1.5 standard deviations), with
    about a quarter of the channels negative (s < 0, comparisons flipped) and thresholds found
    by the exporter's exact search.
    """
    if not config.quantized:
        raise ValueError("random_layers builds quantized (threshold) models only")
    rng = np.random.default_rng(seed)
    levels = 2**config.act_bits - 1
    in_channels, input_max = 3, 255
    mean, std = 128.0, 70.0  # typical pixel statistics; codes use (levels / 2, levels / 2.5)
    layers: list[Layer] = []
    for index, spec in enumerate(config.layers):
        full_in = in_channels * spec.dup_input
        stored_in, stored_out = full_in, spec.out_channels
        if spec.dup_weight > 1 and config.dup_axis == "in":
            stored_in //= spec.dup_weight
        elif spec.dup_weight > 1:
            stored_out //= spec.dup_weight
        weight = _random_kernel(rng, spec.weight, (stored_out, stored_in, spec.kernel, spec.kernel))
        no_thresholds = np.zeros((spec.out_channels, levels), np.int64)
        down = np.zeros(spec.out_channels, bool)
        bound = layer_accumulator_bound(spec, in_channels, input_max)
        layer = ThresholdConv.for_spec(
            f"conv{index + 1}", spec, config.dup_axis, in_channels, input_max, weight, no_thresholds, down, bound
        )
        effective = layer.effective_weight().reshape(spec.out_channels, -1)
        centre = mean * effective.sum(1)
        spread = std * np.sqrt(np.square(effective).sum(1)) + 1.0
        sign = np.where(rng.random(spec.out_channels) < 0.25, -1.0, 1.0)
        s = (sign * levels / (3.0 * spread)).astype(np.float32)  # +-1.5 sd covers the codes
        b = (levels / 2.0 - s.astype(np.float64) * centre).astype(np.float32)
        layer.thresholds, layer.down = fold_thresholds(s, b, bound, levels)
        layers.append(layer)
        in_channels, input_max = spec.out_channels, levels
        mean, std = levels / 2.0, levels / 2.5
    head_out = config.num_anchors * 5
    head_weight = _random_kernel(rng, config.head_weight, (head_out, in_channels * config.head_dup_input, 1, 1))
    scale = np.full(head_out, 0.5 / np.sqrt(in_channels * config.head_dup_input), np.float32)
    bias = np.zeros(head_out, np.float32)
    bias[4::5] = -1.0  # objectness around sigmoid(-1): boxes at min_score 0, few at 0.5
    head = Head(in_channels, head_out, config.head_weight, config.head_dup_input, input_max, head_weight, scale, bias)
    return layers, head


def write_random_model(path: str | Path, config: ModelConfig | None = None, seed: int = 0) -> Path:
    """Write a small valid random integer model file and return its path.

    Args:
        path: where to write (``.fdet`` by convention).
        config: a quantized config (default ``tiny_config()``: 64 px input, 4 blocks).
        seed: random seed; the same seed writes the same bytes.
    """
    config = config or tiny_config()
    layers, head = random_layers(config, seed)
    manifest, arrays = to_manifest(config, layers, head, provenance={"source": "facedet.testing", "seed": seed})
    return write_model_file(path, manifest, arrays)


def randomize_bn(model: Any, seed: int = 0, negative: float = 0.3, zero: float = 0.05) -> None:
    """Give every BatchNorm2d of a torch ``model`` non-trivial statistics (for parity tests).

    Gammas in +-[0.2, 1.2) (a ``negative`` share flipped, so thresholds compare ``acc <= T``; a
    ``zero`` share exactly 0, so codes are constant), biases and running means ~ N(0, 1), running
    variances in [0.5, 3.5). Torch is imported here only: the rest of this module is torch-free.
    """
    import torch

    generator = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            n = module.num_features
            gamma = torch.rand(n, generator=generator) + 0.2
            gamma[torch.rand(n, generator=generator) < negative] *= -1
            gamma[torch.rand(n, generator=generator) < zero] = 0.0
            values = (
                gamma,  # weight
                torch.randn(n, generator=generator),  # bias
                torch.rand(n, generator=generator) * 3 + 0.5,  # running variance
                torch.randn(n, generator=generator),  # running mean
            )
            targets = (module.weight, module.bias, module.running_var, module.running_mean)
            with torch.no_grad():
                for target, value in zip(targets, values, strict=True):
                    assert target is not None  # affine batch-norm with running statistics
                    target.copy_(value)
