"""Accumulator bounds of a quantized layer, from its config alone (torch-free).

The integer engine is exact because every accumulator of a layer lies in ``[-bound, bound]``:
inputs are codes in ``[0, input_max]`` (pixels: 255; a ``levels``-level activation: ``levels``),
stored weights are integers in ``[-WEIGHT_MAX, WEIGHT_MAX]`` and a layer that reads ``d``
duplicated input maps sums ``d`` of them into one effective weight. The bound decides whether
a layer's thresholds are stored as int16 or int32 (``facedet.engine.schema``), the range that
``facedet.engine.fold.fold_thresholds`` searches, and what ``facedet.model_summary`` counts.
"""

from __future__ import annotations

from facedet.config import ConvSpec

INT16_MAX = 32767
WEIGHT_MAX = {"binary": 1, "int8": 127}  # largest |integer weight| of each weight kind


def accumulator_bound(input_max: int, weight_max: int, fan_in: int) -> int:
    """Largest |acc| of a layer: inputs in [0, input_max], integer weights in [-weight_max, weight_max]."""
    return input_max * weight_max * fan_in


def layer_accumulator_bound(spec: ConvSpec, in_channels: int, input_max: int) -> int:
    """Largest |acc| of a quantized conv layer: duplicated inputs sum into weights of up to
    ``dup_input * WEIGHT_MAX``."""
    return accumulator_bound(input_max, WEIGHT_MAX[spec.weight] * spec.dup_input, in_channels * spec.kernel**2)


def threshold_dtype_bytes(bound: int) -> int:
    """Bytes per stored threshold: int16 when the accumulator fits in it, else int32."""
    return 2 if bound <= INT16_MAX else 4
