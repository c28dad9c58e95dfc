"""The native (compiled C) integer engine: the same network as ``facedet.engine.core``, bit for bit.

``facedet.engine._native`` (csrc/native/, built by ``pip install`` where a C compiler exists) runs
one convolution layer per call on NHWC uint8 maps with int32 accumulators and the fused epilogue
(2x2 max pool, threshold codes or requantization, head affine). This module packs each layer once:

- the kernel the C code multiplies: the stored kernel with duplicated weight channels summed on
  the input side (the producer layer writes the sums of its code groups), or the effective kernel
  otherwise; channels compared as ``acc <= T`` negated with their thresholds (so all are ``>=``);
- int8 codes of 8-bit models travel as ``code + 128`` (uint8, zero point 128); the zero point's
  contribution ``128 * sum(w)`` is subtracted per channel in the epilogue.

Instruction set: ``FACEDET_ISA=avx512vnni|avxvnni|avx2|c`` forces one, else the best the CPU runs.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from facedet.engine.schema import Head, Layer, RequantConv, ThresholdConv

try:
    from facedet.engine import _native  # type: ignore[attr-defined]  # a C extension, no stub
except ImportError:  # not built (no compiler at install time): the numpy engine runs instead
    _native = None

ENGINES = ("native", "numpy")
ISAS = ("avx512vnni", "avxvnni", "avx2", "c")
POOLS = {"none": 0, "max2": 1, "max2s1": 2}
THRESHOLD, REQUANT, HEAD = 0, 1, 2
INT8_ZERO_POINT = 128
_warned: set[str] = set()


class NativeUnsupported(ValueError):
    """A layer the native kernels cannot run exactly (the numpy engine runs the model instead)."""


def warn_once(message: str) -> None:
    if message not in _warned:
        _warned.add(message)
        print(f"facedet: {message}", file=sys.stderr)


def available_isas() -> list[str]:
    """Instruction sets the built extension can run on this CPU, best first ([] when not built)."""
    return list(_native.isas()) if _native is not None else []


def resolve_engine(name: str | None = None) -> str:
    """``native`` or ``numpy``: ``name``, else ``$FACEDET_ENGINE``, else native when built.

    Raises:
        ValueError: an unknown engine name.
    """
    choice = (name or os.environ.get("FACEDET_ENGINE") or "native").strip().lower()
    if choice not in ENGINES:
        raise ValueError(f"unknown engine {choice!r} (FACEDET_ENGINE / --engine take native or numpy)")
    if choice == "native" and _native is None:
        warn_once("the native engine is not built (no C compiler at install?); using the slower numpy engine")
        return "numpy"
    return choice


def resolve_isa(name: str | None = None) -> str:
    """The instruction set to run: ``name``, else ``$FACEDET_ISA``, else the best available.

    Raises:
        ValueError: an unknown name, or one this CPU or build cannot run.
    """
    isas = available_isas()
    choice = (name or os.environ.get("FACEDET_ISA") or (isas[0] if isas else "c")).strip().lower()
    if choice not in ISAS:
        raise ValueError(f"unknown instruction set {choice!r} (FACEDET_ISA takes one of {', '.join(ISAS)})")
    if choice not in isas:
        raise ValueError(f"instruction set {choice!r} is not available here (available: {', '.join(isas) or 'none'})")
    return choice


def _pack_kernel(kernel: NDArray[np.int64]) -> tuple[NDArray[np.int8], int, int]:
    """(Cout, Cin, k, k) integer kernel -> (packed (k, G, Cout_pad, 4) int8, G, Cout_pad); see csrc/native/fdn.h."""
    if np.abs(kernel).max(initial=0) > 127:
        raise NativeUnsupported("a kernel value beyond int8")
    out_channels, in_channels, k, _ = kernel.shape
    groups = -(-k * in_channels // 4)
    out_pad = -(-out_channels // 16) * 16
    packed = np.zeros((k, groups * 4, out_pad), np.int8)
    for ky in range(k):
        row = kernel[:, :, ky, :].transpose(0, 2, 1).reshape(out_channels, k * in_channels)  # bytes (kx, c)
        packed[ky, : k * in_channels, :out_channels] = row.T
    return np.ascontiguousarray(packed.reshape(k, groups, 4, out_pad).transpose(0, 1, 3, 2)), groups, out_pad


@dataclass
class NativeLayer:
    """One packed layer: input (H, W, in_channels) uint8 -> uint8 codes, or float32 for the head."""

    kind: int
    pool: str
    in_channels: int
    out_channels: int
    input_max: int  # largest input byte (after group sums / the +128 shift)
    zero_point: int
    kernel: NDArray[np.int64]
    levels: int = 0
    thresholds: NDArray[np.int32] | None = None
    requant: NDArray[np.int64] | None = None
    affine: NDArray[np.float32] | None = None
    group_out: int = 1
    input_tile: int = 1  # the kernel reads the input map repeated this many times (duplicated input maps)

    def __post_init__(self) -> None:
        self.k = self.kernel.shape[2]
        self.weights, self.groups, self.out_pad = _pack_kernel(self.kernel)
        bound = int(np.abs(self.kernel).reshape(self.out_channels, -1).sum(1).max(initial=0)) * 255
        if bound >= 2**31 - 1:
            raise NativeUnsupported(f"accumulator bound {bound} is beyond int32")
        shifts = self.requant[3] if self.kind == REQUANT and self.requant is not None else np.ones(1)
        if not np.all((shifts >= 1) & (shifts <= 62)):  # the C code shifts by shift - 1 and shift
            raise NativeUnsupported("a requantization shift outside 1..62")
        # vpmaddubsw adds two u8 x s8 products in int16: exact when they cannot saturate
        self.pairs_fit_int16 = 2 * self.input_max * int(np.abs(self.kernel).max(initial=0)) <= 32767
        empty64, empty32 = np.zeros(1, np.int64), np.zeros(1, np.int32)
        self._thresholds = self.thresholds if self.thresholds is not None else empty32
        self._requant = self.requant if self.requant is not None else empty64
        self._affine = self.affine if self.affine is not None else np.zeros(1, np.float32)

    def __call__(self, x: NDArray[np.uint8], isa: str, group_out: int | None = None) -> NDArray[Any]:
        height, width, channels = x.shape
        if channels * self.input_tile != self.in_channels:
            expected = self.in_channels // self.input_tile
            raise ValueError(f"native layer expects {expected} input channels, got {channels}")
        group = self.group_out if group_out is None else group_out
        if self.input_tile > 1:
            x = np.tile(x, (1, 1, self.input_tile))
            channels *= self.input_tile
        out_h, out_w = (height // 2, width // 2) if self.pool == "max2" else (height, width)
        if self.kind == HEAD:
            out = np.empty((out_h, out_w, self.out_channels), np.float32)
        else:
            out = np.empty((out_h, out_w, self.out_channels // group), np.uint8)
        dims = (height, width, channels, self.zero_point, self.k, self.groups, self.out_channels, self.out_pad,
                POOLS[self.pool], self.kind, self.levels, group, int(self.pairs_fit_int16))  # fmt: skip
        x = np.ascontiguousarray(x, np.uint8)
        _native.conv(isa, dims, x, self.weights, self._thresholds, self._requant, self._affine, out)
        return out


def _input_group(layer: Layer, input_levels: int) -> int:
    # Duplicated weight channels on the input side: the producer writes the sum of the groups
    # (values up to levels * d, which must fit a byte).
    if isinstance(layer, ThresholdConv) and layer.dup_axis == "in" and layer.dup_weight > 1 and layer.dup_input == 1:
        if input_levels * layer.dup_weight <= 255:
            return layer.dup_weight
    return 1


def _unsummed_kernel(weight: NDArray[np.int64], dup_input: int) -> tuple[NDArray[np.int64], int]:
    """(kernel, input tile): the kernel summed over duplicated input maps where that stays int8,
    else the kernel on the repeated input map (values stay the stored ones)."""
    out_channels, full_in, k, _ = weight.shape
    summed = weight.reshape(out_channels, dup_input, full_in // dup_input, k, k).sum(1)
    return (summed, 1) if np.abs(summed).max(initial=0) <= 127 else (weight, dup_input)


def _threshold_layer(layer: ThresholdConv, group: int) -> NativeLayer:
    sign = np.where(layer.down, -1, 1).astype(np.int64)  # (Cout,)
    base, tile = layer.weight.astype(np.int64), 1  # group > 1: the stored kernel on the summed groups
    if group == 1:
        if layer.dup_weight > 1:
            base = np.tile(base, (1, layer.dup_weight, 1, 1) if layer.dup_axis == "in" else (layer.dup_weight, 1, 1, 1))
        base, tile = _unsummed_kernel(base, layer.dup_input)
    thresholds = np.clip(layer.thresholds.astype(np.int64) * sign[:, None], -(2**31), 2**31 - 1)
    return NativeLayer(
        kind=THRESHOLD,
        pool=layer.pool,
        in_channels=layer.in_channels // group * tile,
        out_channels=layer.out_channels,
        input_max=layer.input_max * group,
        zero_point=0,
        kernel=base * sign[:, None, None, None],
        input_tile=tile,
        levels=thresholds.shape[1],
        thresholds=np.ascontiguousarray(thresholds.T, np.int32),  # (levels, Cout)
    )


def _requant_layer(layer: RequantConv, zero_point: int) -> NativeLayer:
    kernel = layer.weight.astype(np.int64)
    offset = layer.bias.astype(np.int64) - zero_point * kernel.reshape(kernel.shape[0], -1).sum(1)
    requant = np.stack([offset, layer.multiplier[0], layer.multiplier[1], layer.shift]).astype(np.int64)
    return NativeLayer(
        kind=REQUANT,
        pool=layer.pool,
        in_channels=layer.in_channels,
        out_channels=layer.out_channels,
        input_max=255 if zero_point else layer.input_max,
        zero_point=zero_point,
        kernel=kernel,
        requant=np.ascontiguousarray(requant),
    )


def _head_layer(head: Head, zero_point: int) -> NativeLayer:
    kernel, tile = _unsummed_kernel(head.weight.astype(np.int64), head.dup_input)
    offset = -zero_point * kernel.reshape(kernel.shape[0], -1).sum(1)
    return NativeLayer(
        kind=HEAD,
        pool="none",
        in_channels=head.in_channels * tile,
        out_channels=head.out_channels,
        input_max=255 if zero_point else head.input_max,
        zero_point=zero_point,
        kernel=kernel,
        requant=offset.astype(np.int64),
        affine=np.ascontiguousarray(np.stack([head.scale, head.bias]), np.float32),
        input_tile=tile,
    )


class NativeNet:
    """The packed layers of one model; ``raw`` and ``layer_outputs`` as ``IntEngine``'s.

    Raises:
        NativeUnsupported: a layer the kernels cannot run exactly (kernel values beyond int8).
    """

    def __init__(self, layers: list[Layer], head: Head, isa: str | None = None) -> None:
        if _native is None:
            raise NativeUnsupported("the native extension is not built")
        self.isa = resolve_isa(isa)
        self.int8 = any(isinstance(layer, RequantConv) for layer in layers)
        zero_points = [0] + [INT8_ZERO_POINT if self.int8 else 0] * len(layers)
        levels = [255] + [layer.thresholds.shape[1] if isinstance(layer, ThresholdConv) else 255 for layer in layers]
        groups = [_input_group(layer, level) for layer, level in zip(layers, levels, strict=False)] + [1]
        self.layers: list[NativeLayer] = []
        for index, layer in enumerate(layers):
            if isinstance(layer, ThresholdConv):
                packed = _threshold_layer(layer, groups[index])
            else:
                packed = _requant_layer(layer, zero_points[index])
            packed.group_out = groups[index + 1]  # the next layer reads sums of this many code groups
            self.layers.append(packed)
        self.groups = groups
        self.head = _head_layer(head, zero_points[-1])

    def raw(self, letterboxed: NDArray[np.uint8]) -> NDArray[np.float32]:
        """Raw head (A*5, H, W) float32 of one (S, S, 3) uint8 letterboxed BGR image."""
        x = letterboxed
        for layer in self.layers:
            x = layer(x, self.isa)
        return np.ascontiguousarray(self.head(x, self.isa).transpose(2, 0, 1))

    def layer_outputs(self, letterboxed: NDArray[np.uint8]) -> list[NDArray[Any]]:
        """Each block's codes (C, H, W) (uint8, or int8 for 8-bit models), then the raw head."""
        outputs: list[NDArray[Any]] = []
        x = letterboxed
        for index, layer in enumerate(self.layers):
            codes = layer(x, self.isa, group_out=1)
            if self.int8:
                outputs.append((codes.astype(np.int16) - INT8_ZERO_POINT).astype(np.int8).transpose(2, 0, 1))
            else:
                outputs.append(codes.transpose(2, 0, 1))
            group = self.groups[index + 1]
            if group > 1:  # what the next layer reads: the sum of the duplicated code groups
                height, width, channels = codes.shape
                codes = codes.reshape(height, width, group, channels // group).sum(axis=2, dtype=np.uint8)
            x = codes
        outputs.append(np.ascontiguousarray(self.head(x, self.isa).transpose(2, 0, 1)))
        return outputs
