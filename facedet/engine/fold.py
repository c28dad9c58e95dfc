"""Exact integer thresholds of the folded quantizer (torch-free; used by the exporter and fixtures).

A block's eval output in quantizer steps is ``y = float32(acc) * s; y = y + b`` (two float32
operations, as ``QuantConvBlock.pre_pool_codes`` computes them) and its code is
``#{k : y >= k - 0.5}``. Float rounding is monotone, so for s > 0 each set {acc : y >= k - 0.5}
is an up-set of the integers, for s < 0 a down-set, and for s == 0 all or nothing. Rather than
``ceil((k - 0.5 - b) / s)``, whose own rounding can land one off, the arithmetic is evaluated on
every accumulator value in [-bound, bound] and the boundary read off exactly.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray


def fold_thresholds(
    s: NDArray[np.float32], b: NDArray[np.float32], bound: int, levels: int
) -> tuple[NDArray[np.int64], NDArray[np.bool_]]:
    """Exact integer thresholds of ``codes = #{k : float32(acc) * s + b >= k - 0.5}``.

    Args:
        s, b: (C,) float32 folded affine of a block (in quantizer steps per accumulator unit).
        bound: every accumulator lies in [-bound, bound] (bound < 2^24, so float32(acc) is exact).
        levels: number of thresholds (2^bits - 1).

    Returns:
        thresholds (C, levels) int64 and down (C,) bool: for ``down`` channels code_k is
        ``acc <= T_k``, else ``acc >= T_k``. Unreachable boundaries use the sentinels
        ``-bound`` / ``bound + 1`` (up) and ``bound`` / ``-bound - 1`` (down).

    Raises:
        ValueError: if a comparison is not monotone in acc (NaN in s or b).
    """
    s = np.asarray(s, np.float32)
    b = np.asarray(b, np.float32)
    acc = np.arange(-bound, bound + 1, dtype=np.int64)
    acc_f = acc.astype(np.float32)
    channels = s.shape[0]
    thresholds = np.zeros((channels, levels), np.int64)
    down = s < 0
    for c in range(channels):
        y = acc_f * s[c]  # the torch eval path: two separate float32 operations
        y = y + b[c]
        for k in range(1, levels + 1):
            mask = y >= np.float32(k - 0.5)
            hits = np.flatnonzero(mask)
            if down[c]:
                t = int(acc[hits[-1]]) if hits.size else -bound - 1
                ok = hits.size == 0 or hits[0] == 0 and hits.size == hits[-1] + 1
            else:
                t = int(acc[hits[0]]) if hits.size else bound + 1
                ok = hits.size == 0 or hits[-1] == acc.size - 1 and hits.size == acc.size - hits[0]
            if not ok:
                raise ValueError(f"channel {c}: y >= {k - 0.5} is not monotone in acc (s={s[c]}, b={b[c]})")
            thresholds[c, k - 1] = t
    return thresholds, down
