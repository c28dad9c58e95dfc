"""The exact fold of threshold codes into QLinearConv requantization (numpy only, no onnxruntime).

Every channel fit is checked here independently of the fitter's own check: the emulated
QLinearConv + Clip codes must equal ``#{k : acc >= T_k}`` for every accumulator the kernel can make.
"""

from __future__ import annotations

import numpy as np
import pytest

from facedet.engine.fold import fold_thresholds
from facedet.onnx_fold import MARGIN, accumulator_range, codes, fit_channel, fit_layer, qlinear_codes


def _assert_exact_over_range(thresholds: np.ndarray, lo: int, hi: int) -> None:
    fit = fit_channel(thresholds, lo, hi, thresholds.size)
    assert fit.exact and fit.margin >= MARGIN
    acc = np.arange(lo, hi + 1, dtype=np.int64)
    np.testing.assert_array_equal(qlinear_codes(acc, fit.scale, fit.bias, thresholds.size), codes(acc, thresholds))


@pytest.mark.parametrize("seed", range(6))
def test_quantizer_thresholds_fold_exactly(seed: int) -> None:
    # Thresholds as the exporter derives them from a float BN fold, with positive and negative slopes.
    rng = np.random.default_rng(seed)
    bound = int(rng.integers(50, 20000))
    channels = 24
    s = (rng.choice([-1, 1], channels) * rng.uniform(0.5, 40, channels) / bound).astype(np.float32)
    b = rng.uniform(-2, 5, channels).astype(np.float32)
    thresholds, down = fold_thresholds(s, b, bound, 3)
    sign = np.where(down, -1, 1)
    for c in range(channels):
        _assert_exact_over_range(thresholds[c] * sign[c], -bound, bound)


@pytest.mark.parametrize(
    "thresholds",
    [
        [-100, -100, -100],  # every reachable acc has code 3 (threshold at the lowest accumulator)
        [101, 101, 101],  # nothing reaches a threshold: code 0 everywhere (the bound + 1 sentinel)
        [-100, 0, 100],  # thresholds at both extremes of the range
        [-150, -120, 7],  # two below the range: code 2 at the bottom, one step inside
        [5, 200, 300],  # one step inside, the top code never reached
        [-100, -50, 0],  # the first threshold exactly at the lowest accumulator
    ],
)
def test_thresholds_at_the_accumulator_extremes(thresholds: list[int]) -> None:
    _assert_exact_over_range(np.array(thresholds, np.int64), -100, 100)


def test_inexpressible_channels_are_reported() -> None:
    # Two thresholds on one reachable value (code jumps by 2) and spacings that drift by more than one.
    assert not fit_channel(np.array([3, 3, 9], np.int64), -50, 50, 3).exact
    assert not fit_channel(np.array([0, 10, 30], np.int64), -50, 50, 3).exact
    assert not fit_channel(np.array([-20, -10, 100], np.int64), -100, 100, 3).exact  # code stuck at 2
    # The same jump outside the reachable range is harmless.
    assert fit_channel(np.array([-60, -60, 9], np.int64), -50, 50, 3).exact


def test_accumulator_range_per_channel() -> None:
    kernel = np.array([[[[1, -1], [1, 1]]], [[[-2, -3], [0, 4]]]], np.int64)  # (2, 1, 2, 2)
    lo, hi = accumulator_range(kernel, 3)
    np.testing.assert_array_equal(lo, [-3, -15])
    np.testing.assert_array_equal(hi, [9, 12])
    fits = fit_layer(kernel, np.array([[0, 2, 4], [-5, 0, 5]], np.int64), 3)
    assert [f.exact for f in fits] == [True, True]
