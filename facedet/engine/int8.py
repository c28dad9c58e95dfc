"""8-bit post-training quantization of a float (leaky) detector, in numpy. Torch-free.

The exporter hands over the float parameters (conv kernels, batch-norm statistics, head) and the
calibrated activation ranges; this module turns them into ``RequantConv`` layers and an integer
``Head``:

- BN is folded into the kernel: ``W' = W * gamma / sqrt(var + eps)``, ``b' = beta - mean * gamma / sqrt(var + eps)``.
- weights: per output channel symmetric int8, ``q_w = round(W' / s_w)``, ``s_w = max|W'| / 127``.
- activations: per tensor symmetric int8, ``x = q_x * s_x``; the network input is the uint8
  pixel with ``s_x = pixel_scale`` (so no input quantization step at all).
- integer requantization (fixed point, no float inside the network): with ``z = acc + bias_q``
  (``bias_q = round(b' / (s_x s_w))``, int32) and ``M = s_x s_w / s_y``, the output code is
  ``clip(round(z * m / 2^shift), -128, 127)`` where ``m / 2^shift ~ M`` for z >= 0 and
  ``~ 0.1 M`` for z < 0 (the leaky slope), m a 31-bit integer; rounding is half up.
- head: int8 kernel on the int8 codes; ``raw = float32(acc) * (s_x s_w) + bias`` in float32.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from facedet.engine.schema import Head, RequantConv

LEAKY_SLOPE = 0.1


@dataclass
class FloatConv:
    """Float parameters of one conv + BN + leaky block: weight (Cout, Cin, k, k) and BN (Cout,) each."""

    weight: NDArray[np.floating]
    gamma: NDArray[np.floating]
    beta: NDArray[np.floating]
    mean: NDArray[np.floating]
    var: NDArray[np.floating]
    eps: float
    pool: str


def fixed_point(multiplier: float) -> tuple[int, int]:
    """(m, shift) with m / 2^shift ~ multiplier, 2^30 <= m < 2^31 where possible, 1 <= shift <= 62."""
    if multiplier <= 0:
        return 0, 1
    exponent = math.floor(math.log2(multiplier))
    shift = min(62, max(1, 30 - exponent))
    m = round(multiplier * 2.0**shift)
    if m >= 2**31:  # rounding reached 2^31: one bit less precision
        shift -= 1
        m = round(multiplier * 2.0**shift)
    if m >= 2**31:
        raise ValueError(f"requantization multiplier {multiplier} is too large for a 31-bit fixed point")
    return int(m), int(shift)


def quantize_weight(weight: NDArray[np.floating]) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """Per-output-channel symmetric int8: (q (same shape) in [-127, 127], scale (Cout,))."""
    flat = np.asarray(weight, np.float64).reshape(weight.shape[0], -1)
    scale = np.abs(flat).max(1) / 127.0
    scale = np.where(scale > 0, scale, 1.0)  # an all-zero filter quantizes to zeros
    q = np.clip(np.rint(flat / scale[:, None]), -127, 127).astype(np.int64)
    return q.reshape(weight.shape), scale


def quantize_model(
    blocks: list[FloatConv],
    head_weight: NDArray[np.floating],
    head_bias: NDArray[np.floating],
    activation_max: list[float],
    pixel_scale: float,
) -> tuple[list[RequantConv], Head]:
    """Integer layers of a float detector.

    Args:
        blocks: the backbone blocks in order.
        head_weight: (A*5, C, 1, 1) float head kernel; head_bias (A*5,).
        activation_max: calibrated max |output| of each block (after leaky and pooling).
        pixel_scale: value of one input pixel unit (the float model sees ``pixel * pixel_scale``).
    """
    layers: list[RequantConv] = []
    in_scale, input_max, in_channels = float(pixel_scale), 255, 3
    for index, (block, top) in enumerate(zip(blocks, activation_max, strict=True)):
        inv_std = np.asarray(block.gamma, np.float64) / np.sqrt(np.asarray(block.var, np.float64) + block.eps)
        folded = np.asarray(block.weight, np.float64) * inv_std[:, None, None, None]
        bias = np.asarray(block.beta, np.float64) - np.asarray(block.mean, np.float64) * inv_std
        q, w_scale = quantize_weight(folded)
        out_scale = max(float(top), 1e-8) / 127.0
        acc_scale = in_scale * w_scale  # value of one accumulator unit, per channel
        bias_q = np.clip(np.rint(bias / acc_scale), -(2**31), 2**31 - 1).astype(np.int64)
        multiplier = np.zeros((2, q.shape[0]), np.int64)
        shift = np.zeros(q.shape[0], np.int64)
        for c, unit in enumerate(acc_scale / out_scale):
            m_pos, s = fixed_point(float(unit))
            multiplier[0, c], shift[c] = m_pos, s
            multiplier[1, c] = round(LEAKY_SLOPE * unit * 2.0**s)
        layers.append(
            RequantConv(
                name=f"conv{index + 1}",
                in_channels=in_channels,
                out_channels=q.shape[0],
                kernel=q.shape[2],
                pool=block.pool,
                input_max=input_max,
                weight=q,
                bias=bias_q,
                multiplier=multiplier,
                shift=shift,
            )
        )
        in_scale, input_max, in_channels = out_scale, 128, q.shape[0]
    q_head, head_scale = quantize_weight(np.asarray(head_weight, np.float64))
    head = Head(
        in_channels=in_channels,
        out_channels=q_head.shape[0],
        weight_kind="int8",
        dup_input=1,
        input_max=input_max,
        weight=q_head,
        scale=(in_scale * head_scale).astype(np.float32),
        bias=np.asarray(head_bias, np.float32),
    )
    return layers, head
