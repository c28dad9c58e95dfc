"""Fold a threshold layer's per-channel codes into QLinearConv's requantization, exactly (numpy only).

A ``ThresholdConv`` channel maps its integer accumulator to the code ``#{k : acc >= T_k}`` (after
flipping ``down`` channels: negated kernel, negated thresholds). ONNX ``QLinearConv`` with
``x_scale = y_scale = 1``, ``y_zero_point = 0``, an int32 ``bias`` n and a per-channel weight scale
S computes, as onnxruntime's MLAS does on x86, ``saturate_uint8(rint(float32(acc + n) * S))``
(``rint``: round half to even). A following ``Clip(0, L)`` caps the top code. That equals the
threshold code for every accumulator exactly when each code boundary ``k - 0.5`` falls strictly
between the values at ``T_k - 1`` and ``T_k``, with the channel's constant ends kept in range.

Writing P = 1/S (accumulator units per code), the conditions are linear in (P, n), n an integer:

- a step to code k at accumulator t: ``t - 1 + n < (k - 0.5) P < t + n``;
- a channel whose lowest reachable accumulator ``lo`` already has code c0 >= 1: ``lo + n > (c0 - 0.5) P``;
- a channel whose highest ``hi`` has code cf < L: ``hi + n < (cf + 0.5) P``.

Thresholds from a float quantizer are spaced by 1/s up to one unit of rounding, so a (P, n)
usually exists; ``fit_channel`` searches candidates P, takes the best integer n for each, and keeps
the pair with the widest margin. Each channel is then checked over its whole accumulator range
[lo, hi] (every value the kernel can produce from inputs in [0, input_max]) with float32 arithmetic,
and also with a margin of ``MARGIN`` from every rounding boundary, so that an implementation that
rounds the product differently (FMA, another scale order) still lands on the same code. A channel
that fails (two thresholds on one accumulator value, spacings that drift by more than a unit, or a
margin below ``MARGIN``) is reported as not exact; the exporter then computes that layer's codes
with ConvInteger and per-channel comparisons instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

MARGIN = 2.0**-18  # smallest distance of S * (acc + n) from a rounding boundary: 8 float32 ulps at 4
_CANDIDATES = 257  # trial values of P per channel
_INT32 = 2**31 - 1


@dataclass
class ChannelFit:
    """QLinearConv parameters of one channel: weight scale (float32) and int32 bias; ``exact`` says
    whether the whole accumulator range was verified, ``margin`` the smallest distance found."""

    scale: np.float32
    bias: int
    exact: bool
    margin: float


def accumulator_range(kernel: NDArray[np.integer], input_max: int) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """(lo, hi) per output channel of ``kernel`` (Cout, Cin, k, k) on inputs in [0, input_max]
    (zero padding included: 0 is a possible input)."""
    flat = np.asarray(kernel, np.int64).reshape(kernel.shape[0], -1)
    lo: NDArray[np.int64] = input_max * np.minimum(flat, 0).sum(1)
    hi: NDArray[np.int64] = input_max * np.maximum(flat, 0).sum(1)
    return lo, hi


def codes(acc: NDArray[np.int64], thresholds: NDArray[np.int64]) -> NDArray[np.int64]:
    """``#{k : acc >= T_k}`` for one channel: acc (N,), thresholds (L,) -> (N,)."""
    counts: NDArray[np.int64] = (acc[:, None] >= np.asarray(thresholds, np.int64)[None, :]).sum(1)
    return counts


def qlinear_codes(acc: NDArray[np.int64], scale: np.float32, bias: int, levels: int) -> NDArray[np.int64]:
    """What QLinearConv + Clip(0, levels) produce: ``clip(rint(float32(acc + bias) * scale), 0, levels)``."""
    product = (acc + bias).astype(np.float32) * np.float32(scale)  # one float32 rounding, as MLAS
    clipped: NDArray[np.int64] = np.clip(np.rint(product), 0, levels).astype(np.int64)
    return clipped


def _constraints(thresholds: NDArray[np.int64], lo: int, hi: int, levels: int) -> list[tuple[float, float, int]] | None:
    # Each (a, b, sign) bounds the integer bias n: sign +1 means n < a * P - b, sign -1 means
    # n > a * P - b. None when two thresholds fall on one reachable accumulator value.
    t = np.sort(np.asarray(thresholds, np.int64))
    inside = t[(t > lo) & (t <= hi)]
    if np.unique(inside).size != inside.size:
        return None  # the code jumps by 2 at one accumulator value: no rounding can do that
    c0 = int((t <= lo).sum())
    out: list[tuple[float, float, int]] = []
    for j, step in enumerate(inside):
        k = c0 + j + 1
        out.append((k - 0.5, float(step - 1), +1))  # t - 1 + n < (k - 0.5) P
        out.append((k - 0.5, float(step), -1))  # (k - 0.5) P < t + n
    if c0 >= 1:
        out.append((c0 - 0.5, float(lo), -1))  # lo + n > (c0 - 0.5) P
    cf = c0 + inside.size
    if cf < levels:
        out.append((cf + 0.5, float(hi), +1))  # hi + n < (cf + 0.5) P
    return out


def _candidate_periods(thresholds: NDArray[np.int64], lo: int, hi: int) -> NDArray[np.float64]:
    t = np.sort(np.asarray(thresholds, np.int64))
    inside = t[(t > lo) & (t <= hi)]
    if inside.size >= 2:
        gaps = np.diff(inside).astype(np.float64)
        low, high = gaps.max() - 1.0, gaps.min() + 1.0  # every gap is within one unit of P
        if high <= low:
            return np.empty(0)
        return np.linspace(low, high, _CANDIDATES + 2)[1:-1]
    # Zero or one step: any P large enough to keep the ends in range; small P keeps margins wide.
    span = float(hi - lo + 2)
    return np.unique(np.concatenate([np.geomspace(1.0, 4.0 * span, _CANDIDATES), [span + 0.5, 2 * span + 0.5]]))


def _best_bias(constraints: list[tuple[float, float, int]], period: float) -> tuple[int, float] | None:
    # The integer n with the widest slack at this P, and that slack (accumulator units).
    upper = min((a * period - b for a, b, s in constraints if s > 0), default=np.inf)
    lower = max((a * period - b for a, b, s in constraints if s < 0), default=-np.inf)
    if not np.isfinite(upper) and not np.isfinite(lower):
        return 0, np.inf
    if not np.isfinite(upper):
        centre = lower + 1.0
    elif not np.isfinite(lower):
        centre = upper - 1.0
    else:
        centre = (lower + upper) / 2
    best: tuple[int, float] | None = None
    for n in (int(np.floor(centre)), int(np.ceil(centre))):
        slack = min(upper - n, n - lower)
        if slack > 0 and abs(n) < _INT32 and (best is None or slack > best[1]):
            best = (n, slack)
    return best


def _verified_margin(
    thresholds: NDArray[np.int64], lo: int, hi: int, levels: int, scale: np.float32, bias: int
) -> float:
    # Whole-range check in float32 (as run) and the distance to the nearest rounding boundary in float64.
    acc = np.arange(lo, hi + 1, dtype=np.int64)
    if not np.array_equal(qlinear_codes(acc, scale, bias, levels), codes(acc, thresholds)):
        return -1.0
    value = (acc + bias).astype(np.float64) * float(scale)
    near = value[(value > -1.0) & (value < levels + 1.0)]  # only boundaries at 0.5 .. L - 0.5 matter
    if near.size == 0:
        return np.inf
    distance = np.abs(near - (np.floor(near) + 0.5))
    return float(distance.min())


def fit_channel(thresholds: NDArray[np.int64], lo: int, hi: int, levels: int) -> ChannelFit:
    """QLinearConv (scale, bias) giving ``#{k : acc >= T_k}`` for every acc in [lo, hi], if one exists."""
    failed = ChannelFit(np.float32(1.0), 0, False, 0.0)
    constraints = _constraints(thresholds, lo, hi, levels)
    if constraints is None:
        return failed
    ranked: list[tuple[float, float, int]] = []  # (margin in code units, P, n)
    for period in _candidate_periods(thresholds, lo, hi):
        found = _best_bias(constraints, float(period))
        if found is not None:
            ranked.append((found[1] / period, float(period), found[0]))
    ranked.sort(reverse=True)
    for _, period, bias in ranked[:8]:  # the float32 check may reject the nominal best
        scale = np.float32(1.0 / period)
        margin = _verified_margin(thresholds, lo, hi, levels, scale, bias)
        if margin >= MARGIN:
            return ChannelFit(scale, bias, True, margin)
    return failed


def fit_layer(kernel: NDArray[np.integer], thresholds: NDArray[np.int64], input_max: int) -> list[ChannelFit]:
    """One ``ChannelFit`` per output channel.

    Args:
        kernel: (Cout, Cin, k, k) integer kernel as convolved (``down`` channels already negated).
        thresholds: (Cout, L) thresholds in the same orientation (codes count ``acc >= T``).
        input_max: largest input value (0 is the smallest).
    """
    lo, hi = accumulator_range(kernel, input_max)
    levels = thresholds.shape[1]
    return [fit_channel(thresholds[c], int(lo[c]), int(hi[c]), levels) for c in range(kernel.shape[0])]
