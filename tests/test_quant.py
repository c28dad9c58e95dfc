"""Quantizers and QuantConv2d (facedet/models/quant.py): values and STE gradients against numpy
(larq's test style), DupNet duplication equivalences, and the folded eval path of QuantConvBlock."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from numpy.typing import NDArray

from facedet.config import ConvSpec
from facedet.models.layers import QuantConvBlock
from facedet.models.quant import (
    ActQuant,
    QuantConv2d,
    activation_codes,
    binary_weight,
    int8_weight,
    round_ste,
    sign_ste,
)


def _weights(seed: int, shape: tuple[int, ...], scale: float = 1.0) -> NDArray[np.float32]:
    return (np.random.default_rng(seed).normal(0, scale, size=shape)).astype(np.float32)


def _np_sign(w: NDArray[np.floating]) -> NDArray[np.floating]:
    return np.where(w >= 0, 1.0, -1.0)


def _np_round_half_away(x: NDArray[np.floating]) -> NDArray[np.floating]:
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


# ---------------------------------------------------------------- weight quantizers


def test_sign_ste_values_and_clipped_gradient() -> None:
    w_np = np.array([-2.0, -1.0, -0.3, -0.0, 0.0, 1e-8, 0.7, 1.0, 1.0001, 5.0], np.float32)
    upstream = np.arange(1, w_np.size + 1, dtype=np.float32)
    w = torch.tensor(w_np, requires_grad=True)
    out = sign_ste(w)
    np.testing.assert_array_equal(out.detach().numpy(), _np_sign(w_np))
    assert out[3] == 1 and out[4] == 1  # sign(0) = +1, also for -0.0
    out.backward(torch.tensor(upstream))
    # Straight-through where |w| <= 1 (the boundary included), zero outside.
    np.testing.assert_array_equal(w.grad.numpy(), upstream * (np.abs(w_np) <= 1))


def test_binary_weight_alpha_is_mean_abs_per_output_channel() -> None:
    w_np = _weights(0, (6, 4, 3, 3))
    w = torch.tensor(w_np, requires_grad=True)
    signs, alpha = binary_weight(w)
    np.testing.assert_array_equal(signs.detach().numpy(), _np_sign(w_np))
    np.testing.assert_allclose(alpha.detach().numpy(), np.abs(w_np).reshape(6, -1).mean(1), rtol=1e-6)
    # d(sum(sign * alpha_detached)) / dw: the clipped STE, times alpha of the row.
    (signs * alpha.detach().view(-1, 1, 1, 1)).sum().backward()
    expected = (np.abs(w_np) <= 1) * np.abs(w_np).reshape(6, -1).mean(1).reshape(-1, 1, 1, 1)
    np.testing.assert_allclose(w.grad.numpy(), expected, rtol=1e-6)


def test_int8_weight_matches_numpy() -> None:
    w_np = _weights(1, (5, 3, 3, 3), scale=0.2)
    w_np[2] = 0.0  # an all-zero filter: delta is clamped, codes are 0
    w_int, delta = int8_weight(torch.tensor(w_np))
    delta_np = np.maximum(np.abs(w_np).reshape(5, -1).max(1), 1e-8) / 127.0
    codes_np = np.clip(_np_round_half_away(w_np / delta_np.reshape(-1, 1, 1, 1).astype(np.float32)), -127, 127)
    np.testing.assert_allclose(delta.numpy(), delta_np, rtol=1e-6)
    np.testing.assert_array_equal(w_int.numpy(), codes_np)
    assert np.abs(w_int.numpy()).reshape(5, -1).max(1).tolist() == [127, 127, 0, 127, 127]
    # Reconstruction error is at most half a step.
    step = delta_np.reshape(-1, 1, 1, 1)
    assert np.all(np.abs(w_int.numpy() * step - w_np) <= step / 2 + 1e-7)


def test_round_ste_rounds_half_away_from_zero_with_identity_gradient() -> None:
    x = torch.tensor([-2.5, -1.5, -0.5, -0.49, 0.49, 0.5, 1.5, 2.5], requires_grad=True)
    out = round_ste(x)
    np.testing.assert_array_equal(out.detach().numpy(), [-3, -2, -1, 0, 0, 1, 2, 3])
    out.backward(torch.arange(8.0))
    np.testing.assert_array_equal(x.grad.numpy(), np.arange(8.0))


# ---------------------------------------------------------------- activation quantizer


def test_act_quant_training_codes_and_hwgq_gradient() -> None:
    step = 0.538
    quant = ActQuant(bits=2, step=step).train()
    assert quant.levels == 3
    x_np = np.random.default_rng(2).uniform(-1.0, 2.5, size=4000).astype(np.float32)
    x = torch.tensor(x_np, requires_grad=True)
    codes = quant(x)
    y = x_np / np.float32(step)  # float32, as the module divides
    np.testing.assert_array_equal(codes.detach().numpy(), np.clip(np.floor(y + np.float32(0.5)), 0, 3))
    assert set(np.unique(codes.detach().numpy())) == {0.0, 1.0, 2.0, 3.0}
    upstream = np.random.default_rng(3).normal(size=x_np.shape).astype(np.float32)
    codes.backward(torch.tensor(upstream))
    # HWGQ: d codes / dx = 1 / step inside [0, 3 * step], 0 outside (below 0 and saturated).
    inside = (y >= 0) & (y <= 3)
    assert inside.sum() > 1000 and (~inside).sum() > 1000
    np.testing.assert_allclose(x.grad.numpy(), upstream * inside / np.float32(step), rtol=1e-6)


def test_activation_codes_exactly_at_half_steps() -> None:
    below_half = np.nextafter(np.float32(0.5), np.float32(0))
    below_one_half = np.nextafter(np.float32(1.5), np.float32(0))
    y_np = np.array([-1.0, -0.5, 0.0, below_half, 0.5, 1.0, below_one_half, 1.5, 2.4999998, 2.5, 3.5, 50], np.float32)
    codes = activation_codes(torch.tensor(y_np), 3).numpy()
    # code = #{k in 1..3 : y >= k - 0.5}: a value exactly at k - 0.5 rounds up.
    expected = np.array([(y_np >= k - 0.5).astype(int) for k in (1, 2, 3)]).sum(0)
    np.testing.assert_array_equal(codes, expected)
    np.testing.assert_array_equal(codes, [0, 0, 0, 0, 1, 1, 1, 2, 2, 3, 3, 3])
    # The reason for comparisons: floor(y + 0.5) in float32 rounds the value just below 0.5 onto 1.
    assert np.floor(below_half + np.float32(0.5)) == 1.0
    assert activation_codes(torch.tensor([below_half]), 3).item() == 0.0
    # Other widths: 1 bit -> {0, 1}.
    np.testing.assert_array_equal(activation_codes(torch.tensor([0.49, 0.5, 7.0]), 1).numpy(), [0, 1, 1])


# ---------------------------------------------------------------- duplication equivalences


def _integer_input(seed: int, channels: int, high: int = 4) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, high, (2, channels, 7, 6), generator=generator).float()


def test_duplicated_weight_channels_in_axis_equal_reduced_form() -> None:
    d, cin, cout = 4, 8, 6
    conv = QuantConv2d(cin, cout, 3, weight_kind="binary", in_scale=0.5, dup_weight=d, dup_axis="in").eval()
    assert tuple(conv.weight.shape) == (cout, cin // d, 3, 3)
    x = _integer_input(0, cin)
    stored = torch.where(conv.weight >= 0, 1.0, -1.0)  # independent sign
    alpha = conv.weight.detach().abs().mean((1, 2, 3))
    # Reduced form: sum the d input-channel groups, then convolve with the stored kernel.
    reduced = F.conv2d(sum(x[:, g * (cin // d) : (g + 1) * (cin // d)] for g in range(d)), stored, padding=1)
    acc, multiplier = conv.accumulate(x)
    torch.testing.assert_close(acc, reduced, rtol=0, atol=0)
    torch.testing.assert_close(multiplier, alpha * 0.5)
    # ... and both equal the full conv with the kernel tiled d times along input channels.
    torch.testing.assert_close(acc, F.conv2d(x, stored.repeat(1, d, 1, 1), padding=1), rtol=0, atol=0)
    torch.testing.assert_close(conv(x), reduced * (alpha * 0.5).view(1, -1, 1, 1))


def test_duplicated_weight_channels_out_axis_equal_tiled_outputs() -> None:
    d, cin, cout = 2, 5, 8
    conv = QuantConv2d(cin, cout, 3, weight_kind="binary", in_scale=1.0, dup_weight=d, dup_axis="out").eval()
    assert tuple(conv.weight.shape) == (cout // d, cin, 3, 3)
    x = _integer_input(1, cin)
    once = F.conv2d(x, torch.where(conv.weight >= 0, 1.0, -1.0), padding=1)  # each stored filter once
    acc, multiplier = conv.accumulate(x)
    torch.testing.assert_close(acc, torch.cat([once] * d, 1), rtol=0, atol=0)
    alpha = conv.weight.detach().abs().mean((1, 2, 3))
    torch.testing.assert_close(multiplier, torch.cat([alpha] * d))


def test_duplicated_input_maps_equal_conv_on_concatenated_input() -> None:
    d, cin, cout = 4, 3, 6
    conv = QuantConv2d(cin, cout, 3, weight_kind="binary", in_scale=1 / 255, dup_input=d).eval()
    assert tuple(conv.weight.shape) == (cout, d * cin, 3, 3)
    x = _integer_input(2, cin, high=256)  # uint8 pixels
    full = torch.where(conv.weight >= 0, 1.0, -1.0)  # the full d * Cin binary kernel
    expected_acc = F.conv2d(torch.cat([x] * d, 1), full, padding=1)
    acc, _ = conv.accumulate(x)
    torch.testing.assert_close(acc, expected_acc, rtol=0, atol=0)
    alpha = conv.weight.detach().abs().mean((1, 2, 3))
    torch.testing.assert_close(conv(x), expected_acc * (alpha / 255).view(1, -1, 1, 1))
    # The summed effective kernel takes values in {-d, ..., d} (d binary weights per tap).
    effective, _ = conv.effective_integer_weight()
    assert effective.abs().max() <= d and set(effective.unique().tolist()) <= set(range(-d, d + 1, 2))


def test_duplication_gradients_reach_every_stored_weight() -> None:
    conv = QuantConv2d(8, 4, 3, weight_kind="binary", in_scale=1.0, dup_weight=2, dup_axis="in").train()
    with torch.no_grad():
        conv.weight.mul_(0.1)  # inside the STE window
    conv(_integer_input(3, 8)).pow(2).sum().backward()
    assert conv.weight.grad is not None and (conv.weight.grad != 0).float().mean() > 0.9


def test_invalid_quant_conv_arguments() -> None:
    with pytest.raises(ValueError, match="binary or int8"):
        QuantConv2d(4, 4, 3, weight_kind="ternary", in_scale=1.0)
    with pytest.raises(ValueError, match="does not divide"):
        QuantConv2d(6, 4, 3, weight_kind="binary", in_scale=1.0, dup_weight=4)
    with pytest.raises(ValueError, match="not both"):
        QuantConv2d(4, 4, 3, weight_kind="binary", in_scale=1.0, dup_weight=2, dup_input=2)


# ---------------------------------------------------------------- folded eval path


@pytest.mark.parametrize(
    ("spec", "dup_axis"),
    [
        (ConvSpec(8, weight="binary"), "in"),
        (ConvSpec(8, weight="int8", pool="max2"), "in"),
        (ConvSpec(8, weight="binary", dup_weight=2), "out"),
        (ConvSpec(8, weight="binary", dup_input=2, pool="max2s1"), "in"),
    ],
)
def test_quant_conv_block_folded_eval_equals_conv_bn_quant(spec: ConvSpec, dup_axis: str) -> None:
    torch.manual_seed(0)
    step = 0.538
    block = QuantConvBlock(4, spec, in_scale=step, act_bits=2, act_step=step, dup_axis=dup_axis)
    with torch.no_grad():  # non-trivial BN statistics, some negative gammas
        block.bn.weight.copy_(torch.tensor([1.5, -0.8, 0.3, -2.0, 1.0, 0.05, -0.4, 2.5]))
        block.bn.bias.copy_(torch.linspace(-0.5, 1.2, 8))
        block.bn.running_mean.copy_(torch.linspace(-3, 3, 8))
        block.bn.running_var.copy_(torch.linspace(0.3, 9, 8))
    block.eval()
    x = _integer_input(4, 4)  # codes 0..3
    folded = block.pre_pool_codes(x)

    # Reference: the training path's pieces, with BN using its running statistics.
    with torch.no_grad():
        y = block.bn(block.conv(x))  # real-valued pre-activation
        reference = block.act(y)  # clamp(floor(y / step + 0.5), 0, 3)
    in_steps = (y / step).numpy()
    distance = np.abs(in_steps[..., None] - (np.arange(1, 4) - 0.5)).min(-1)
    clear = distance > 1e-4  # away from a threshold, float rounding cannot flip a code
    assert clear.mean() > 0.99
    np.testing.assert_array_equal(folded.numpy()[clear], reference.numpy()[clear])
    assert set(np.unique(folded.numpy())) == {0.0, 1.0, 2.0, 3.0}  # every level is exercised
    # The block output is the pooled codes.
    pooled = {
        "none": folded,
        "max2": F.max_pool2d(folded, 2, 2),
        "max2s1": F.max_pool2d(F.pad(folded, (0, 1, 0, 1), mode="replicate"), 2, 1),  # darknet keeps the size
    }[spec.pool]
    torch.testing.assert_close(block(x), pooled)
