"""Exact integer kernels of the integer engine, in numpy (float32 BLAS on small integers).

Feature maps are NHWC without the batch axis: (H, W, C) float32 arrays that hold integers
(pixels, activation codes or accumulators). float32 represents every integer below 2^24
exactly, and a sum of integers whose partial sums all stay below 2^24 is exact in any order, so
a BLAS ``sgemm`` is an exact integer convolution as long as the layer's accumulator bound
(``facedet.engine.bounds.accumulator_bound``) is below 2^24. ``conv2d`` checks the bound and
falls back to exact per-tap float32 products summed in float64 (int8 Tiny-YOLO's deep layers).

Two convolution layouts, chosen per layer by shape (measured on a 2-core AVX2 machine; see
``conv2d``): an im2col matrix (one big matmul), or k*k shifted matmuls over the flattened,
zero-padded map, which avoids the im2col copy and wins on large maps with 16+ channels.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.lib.stride_tricks import as_strided
from numpy.typing import NDArray

F32 = NDArray[np.float32]
EXACT_F32 = 2**24  # integers below this are exact in float32


def kernel_matrix(weight: NDArray[np.floating] | NDArray[np.integer]) -> F32:
    """(Cout, Cin, k, k) torch-layout kernel -> (k*k*Cin, Cout) matrix, rows ordered (ky, kx, c)."""
    out_channels = weight.shape[0]
    return np.ascontiguousarray(weight.transpose(0, 2, 3, 1).reshape(out_channels, -1).T, dtype=np.float32)


def kernel_taps(weight: NDArray[np.floating] | NDArray[np.integer]) -> F32:
    """(Cout, Cin, k, k) kernel -> (k*k, Cin, Cout): one (Cin, Cout) matrix per tap (ky, kx)."""
    out_channels, in_channels, k, _ = weight.shape
    return np.ascontiguousarray(weight.transpose(2, 3, 1, 0).reshape(k * k, in_channels, out_channels), np.float32)


def _conv_im2col(x: F32, matrix: F32, k: int) -> F32:
    # im2col with rows ordered (ky, kx, c): in the zero-padded NHWC map the k*C values of one
    # kernel row are contiguous, so the strided view (H, W, ky, kx*C) copies in runs of k*C floats
    # (~2x faster than a sliding_window_view gather or k*k concatenated shifted copies).
    height, width, channels = x.shape
    if k == 1:
        return (x.reshape(height * width, channels) @ matrix).reshape(height, width, -1)
    p = k // 2
    padded = np.pad(x, ((p, p), (p, p), (0, 0)))  # zero padding = pixel 0 / code 0, as in torch
    row, col, chan = padded.strides
    view = as_strided(padded, (height, width, k, k * channels), (row, col, row, chan), writeable=False)
    return (view.reshape(height * width, k * k * channels) @ matrix).reshape(height, width, -1)


def _conv_taps(x: F32, taps: F32, k: int, accumulate: type) -> NDArray[np.floating]:
    # Each tap (dy, dx) reads a contiguous slice of the flattened padded map: output pixel
    # (y, x') on a grid of padded width Wp takes input row y + dy, column x' + dx, i.e. flat
    # offset dy * Wp + dx. The last k - 1 columns of each output row are junk and dropped. One
    # extra zero row keeps the last tap's slice inside the buffer.
    height, width, channels = x.shape
    p = k // 2
    padded_width = width + 2 * p
    buffer = np.zeros((height + 2 * p + 1, padded_width, channels), np.float32)
    buffer[p : p + height, p : p + width] = x
    flat = buffer.reshape(-1, channels)
    n = height * padded_width
    acc = np.zeros((n, taps.shape[2]), accumulate)
    for t in range(k * k):
        dy, dx = divmod(t, k)
        offset = dy * padded_width + dx
        acc += flat[offset : offset + n] @ taps[t]  # each product sum is exact in float32
    return acc.reshape(height, padded_width, -1)[:, :width]


# Layout choice, measured per layer at IFQ/DupNet shapes (min ms of 7, 1 thread; im2col / taps):
# 3->16 at 320^2: 3.7 / 5.9; 16->32 at 160^2: 6.0 / 4.5; 32->64 at 80^2: 3.8 / 3.3;
# 64->128 at 40^2: 3.1 / 2.9; 128->256 at 20^2: 2.7 / 2.9; 256->256 at 10^2: 1.5 / 1.6.
# Taps win where channels are moderate and maps large (no im2col copy); im2col elsewhere.
_TAPS_CHANNELS = (8, 64)
_TAPS_MIN_PIXELS = 40 * 40


class Conv:
    """An exact integer convolution with a fixed kernel (stride 1, zero padding k // 2).

    Args:
        weight: (Cout, Cin, k, k) integer-valued kernel (torch layout).
        input_max: largest |input value| (255 for pixels, the top code for activations).

    Raises:
        ValueError: if even one tap's products can exceed float32's exact integer range.
    """

    def __init__(self, weight: NDArray[np.floating] | NDArray[np.integer], input_max: int) -> None:
        out_channels, in_channels, k, _ = weight.shape
        magnitude = np.abs(np.asarray(weight, np.float64))
        self.k, self.in_channels, self.out_channels = k, in_channels, out_channels
        # Data-independent bounds on |acc|: all taps, and one tap (the per-tap matmul).
        self.bound = int(magnitude.reshape(out_channels, -1).sum(1).max()) * input_max
        per_tap = int(magnitude.sum(axis=1).max()) * input_max
        if per_tap >= EXACT_F32:
            raise ValueError(f"accumulator bound {per_tap} of one tap is beyond exact float32 products")
        self.exact_f32 = self.bound < EXACT_F32
        self.weight = np.asarray(weight)
        # Each layout's kernel is built on first use: which one runs depends on the map size,
        # and holding both doubles the memory of big float32 kernels (8-bit Tiny-YOLO: 63 MB each).
        self._matrix: F32 | None = None
        self._taps: F32 | None = None

    @property
    def matrix(self) -> F32:
        if self._matrix is None:
            self._matrix = kernel_matrix(self.weight)
        return self._matrix

    @property
    def taps(self) -> F32:
        if self._taps is None:
            self._taps = kernel_taps(self.weight)
        return self._taps

    def __call__(self, x: F32) -> NDArray[np.floating]:
        """(H, W, Cin) integer-valued float32 -> (H, W, Cout) exact accumulator.

        float32 when the bound allows, else float64 (per-tap float32 products summed in float64).
        """
        height, width, _ = x.shape
        if not self.exact_f32:
            return _conv_taps(x, self.taps, self.k, np.float64)
        low, high = _TAPS_CHANNELS
        if self.k > 1 and low <= self.in_channels <= high and height * width >= _TAPS_MIN_PIXELS:
            return _conv_taps(x, self.taps, self.k, np.float32)
        return _conv_im2col(x, self.matrix, self.k)


def pool(x: NDArray[np.generic], kind: str) -> NDArray[np.generic]:
    """2x2 max-pool on (H, W, C): ``max2`` stride 2 (floor, as torch), ``max2s1`` stride 1 after
    replicating the last row and column (darknet keeps the map size), ``none`` identity."""
    if kind == "max2":
        # Four strided views and three elementwise maxima: ~5x faster than a reshape + max
        # reduction over two non-contiguous axes. Odd sizes drop the last row/column (floor).
        h, w = (x.shape[0] // 2) * 2, (x.shape[1] // 2) * 2
        pooled: NDArray[Any] = np.maximum(
            np.maximum(x[0:h:2, 0:w:2], x[0:h:2, 1:w:2]), np.maximum(x[1:h:2, 0:w:2], x[1:h:2, 1:w:2])
        )
        return pooled
    if kind == "max2s1":
        padded = np.concatenate([x, x[-1:]], axis=0)
        padded = np.concatenate([padded, padded[:, -1:]], axis=1)
        pooled_s1: NDArray[Any] = np.maximum(
            np.maximum(padded[:-1, :-1], padded[1:, :-1]), np.maximum(padded[:-1, 1:], padded[1:, 1:])
        )
        return pooled_s1
    if kind == "none":
        return x
    raise ValueError(f"unknown pool {kind!r}")


def threshold_codes(acc: NDArray[Any], thresholds: F32) -> F32:
    """Codes ``#{k : acc >= T_k}`` per channel.

    Args:
        acc: (H, W, C) accumulators, already sign-flipped on channels whose comparison is
            ``acc <= T`` (so every comparison here is ``>=``).
        thresholds: (levels, C) thresholds in the same (flipped) orientation.

    Returns:
        (H, W, C) float32 codes in 0..levels.
    """
    codes = np.zeros(acc.shape, np.float32)
    for level in thresholds:
        codes += acc >= level
    return codes


def requantize(z: NDArray[np.int64], multiplier: NDArray[np.integer], shift: NDArray[np.integer]) -> NDArray[np.int64]:
    """Fixed-point requantization ``round(z * m / 2^shift)`` (round half up), per channel.

    Args:
        z: (..., C) int64 accumulators (bias already added).
        multiplier: (2, C) int64 multipliers for z >= 0 and z < 0 (the leaky slope lives in
            the second row), each below 2^31.
        shift: (C,) right shifts, >= 1.

    Returns:
        (..., C) int64, not yet clipped.
    """
    m = np.where(z >= 0, multiplier[0], multiplier[1])
    out: NDArray[np.int64] = (z * m + (np.int64(1) << (shift - 1))) >> shift
    return out
