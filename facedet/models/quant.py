"""Quantizers and the quantized convolution (larq-style, in PyTorch).

Conventions (HWGQ, Cai et al., CVPR 2017; IFQ-Net, Gao et al., CVPR 2018 workshops; docs/method.md §3):
- Every quantized layer works on *integer-valued* inputs: uint8 pixels for the first layer,
  activation codes q in {0..2^bits-1} for the others. ``in_scale`` is the value of one input
  unit (1/255 for pixels, the quantizer step for codes).
- Weights are integers too: sign(W) in {-1, +1} with a per-output-channel scale
  alpha = mean|W| ("binary"), or round(W / delta) in [-127, 127] with delta = max|W| / 127
  ("int8"). So ``acc = conv(x_int, w_int)`` is an exact integer and the layer's real-valued
  output is ``acc * alpha * in_scale``.
- In eval mode batch-norm and the activation quantizer fold into one float32 affine on the
  accumulator, ``y = acc * s + b`` (in units of the output step), and the output code is
  ``#{k in 1..n : y >= k - 0.5}``. The exporter turns exactly that float32 arithmetic into
  integer thresholds, which is why the integer engine matches this model bit for bit.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class _SignSTE(torch.autograd.Function):
    """sign(w) with sign(0) = +1; backward passes the gradient where |w| <= 1 (BNN's clipped STE)."""

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, w: Tensor) -> Tensor:
        ctx.save_for_backward(w)
        return torch.where(w >= 0, torch.ones_like(w), -torch.ones_like(w))

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: Tensor) -> Tensor:
        (w,) = ctx.saved_tensors
        return grad * (w.abs() <= 1).to(grad.dtype)


class _RoundSTE(torch.autograd.Function):
    """round-half-away-from-zero forward, identity backward."""

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, x: Tensor) -> Tensor:
        return torch.sign(x) * torch.floor(x.abs() + 0.5)

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: Tensor) -> Tensor:
        return grad


def sign_ste(w: Tensor) -> Tensor:
    """Binary weights in {-1, +1} with the clipped straight-through gradient."""
    return _SignSTE.apply(w)


def round_ste(x: Tensor) -> Tensor:
    """Round half away from zero with the straight-through (identity) gradient."""
    return _RoundSTE.apply(x)


def binary_weight(w: Tensor) -> tuple[Tensor, Tensor]:
    """(sign(w), alpha) with alpha (out,) = mean |w| per output channel (XNOR-Net)."""
    alpha = w.abs().mean(dim=tuple(range(1, w.dim())))
    return sign_ste(w), alpha


def int8_weight(w: Tensor) -> tuple[Tensor, Tensor]:
    """(round(w / delta) clipped to [-127, 127], delta) with delta (out,) = max |w| / 127."""
    delta = w.abs().amax(dim=tuple(range(1, w.dim()))).clamp_min(1e-8) / 127.0
    shape = (-1,) + (1,) * (w.dim() - 1)
    return torch.clamp(round_ste(w / delta.view(shape)), -127, 127), delta


def activation_codes(y: Tensor, levels: int) -> Tensor:
    """Codes ``#{k in 1..levels : y >= k - 0.5}`` of y measured in steps (forward only).

    Written as comparisons, not ``floor(y + 0.5)``: adding 0.5 in float32 can round a value just
    below a threshold up onto it, and the integer engine compares exactly.
    """
    codes = torch.zeros_like(y)
    for k in range(1, levels + 1):
        codes = codes + (y >= k - 0.5).to(y.dtype)
    return codes


class _CodesSTE(torch.autograd.Function):
    """Forward: codes clamp(floor(y + 0.5), 0, levels) of y (in steps). Backward: pass-through
    inside [0, levels] (HWGQ).

    Training-only: one fused clamp/floor instead of ``activation_codes``' comparisons (the
    element-wise work dominates a training step on CPU). It can differ from the eval path only
    for y within float rounding of a half-integer, which does not matter for training.
    """

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, y: Tensor, levels: int) -> Tensor:
        ctx.save_for_backward((y >= 0) & (y <= levels))
        return torch.clamp(torch.floor(y + 0.5), 0, levels)

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: Tensor) -> tuple[Tensor, None]:
        (inside,) = ctx.saved_tensors
        return grad * inside, None


class ActQuant(nn.Module):
    """k-bit uniform activation quantizer returning integer codes (HWGQ levels).

    Forward: ``q = #{k in 1..2^bits-1 : x / step >= k - 0.5}``, i.e. round(clip(x / step)); the
    value is ``q * step``. Backward (HWGQ): dq/dx = 1/step where 0 <= x/step <= 2^bits - 1, else
    0. The step is fixed (HWGQ's published 0.538 for 2 bits) so it can be folded at export.
    """

    def __init__(self, bits: int = 2, step: float = 0.538) -> None:
        super().__init__()
        self.bits = bits
        self.levels = 2**bits - 1
        self.step = float(step)
        # Relaxed (a training stage, facedet.models.precision): the clipped value clamp(x / step,
        # 0, levels) without rounding; the same gradient as the quantizer.
        self.relaxed = False

    def forward(self, x: Tensor) -> Tensor:
        if self.relaxed:
            return torch.clamp(x / self.step, 0.0, float(self.levels))
        return _CodesSTE.apply(x / self.step, self.levels)

    def extra_repr(self) -> str:
        return f"bits={self.bits}, step={self.step:.4f}" + (", relaxed" if self.relaxed else "")


class QuantConv2d(nn.Module):
    """Convolution with integer weights on integer inputs, with DupNet duplication.

    Args:
        in_channels: channels of the (non-duplicated) input.
        out_channels: output channels of the full convolution.
        kernel: 1 or 3 (padding kernel // 2, zero padding = code 0).
        weight_kind: ``"binary"`` or ``"int8"``.
        in_scale: value of one input unit (1/255 for pixels, the input quantizer step).
        dup_weight: d; only 1/d of the kernel is a parameter, tiled along ``dup_axis``.
        dup_axis: ``"in"`` (tile along input channels) or ``"out"`` (along output channels).
        dup_input: d'; the input is (conceptually) concatenated d' times along channels.
        bias: add a float bias (used by the detection head).

    ``forward`` returns the real-valued output ``acc * scale * in_scale (+ bias)``;
    ``accumulate`` returns the exact integer accumulator and the per-channel multiplier.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel: int,
        weight_kind: str,
        in_scale: float,
        dup_weight: int = 1,
        dup_axis: str = "in",
        dup_input: int = 1,
        bias: bool = False,
    ) -> None:
        super().__init__()
        if weight_kind not in ("binary", "int8"):
            raise ValueError(f"weight_kind must be binary or int8, got {weight_kind!r}")
        if dup_weight > 1 and dup_input > 1:
            raise ValueError("a layer takes duplicated weights or duplicated inputs, not both")
        full_in = in_channels * dup_input
        stored_in, stored_out = full_in, out_channels
        if dup_weight > 1:
            axis_size = full_in if dup_axis == "in" else out_channels
            if axis_size % dup_weight:
                raise ValueError(f"dup_weight {dup_weight} does not divide {axis_size} ({dup_axis} axis)")
            if dup_axis == "in":
                stored_in = full_in // dup_weight
            else:
                stored_out = out_channels // dup_weight
        self.in_channels, self.out_channels, self.kernel = in_channels, out_channels, kernel
        self.weight_kind, self.in_scale = weight_kind, float(in_scale)
        self.dup_weight, self.dup_axis, self.dup_input = dup_weight, dup_axis, dup_input
        self.weight = nn.Parameter(torch.empty(stored_out, stored_in, kernel, kernel))
        nn.init.kaiming_uniform_(self.weight, a=5**0.5)
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        # Training stages (facedet.models.precision): float_weight uses the latent weights as they
        # are (scale 1); relaxed_input means the inputs are not integer codes, so eval mode must
        # not round the accumulator.
        self.float_weight = False
        self.relaxed_input = False

    def stored_integer_weight(self) -> tuple[Tensor, Tensor]:
        """Integer weights of the stored (reduced) kernel and their per-stored-filter scale
        (the latent float weights and scale 1 in the float training stage)."""
        if self.float_weight:
            return self.weight, torch.ones(self.weight.shape[0], dtype=self.weight.dtype, device=self.weight.device)
        if self.weight_kind == "binary":
            return binary_weight(self.weight)
        return int8_weight(self.weight)

    def effective_integer_weight(self) -> tuple[Tensor, Tensor]:
        """The integer kernel (out, in, k, k) that acts on the non-duplicated input, and scale (out,).

        Duplicated weight channels are tiled back; duplicated input maps are summed away
        (conv(cat([x] * d), W) == conv(x, sum of W's d input groups)).
        """
        w_int, scale = self.stored_integer_weight()
        if self.dup_weight > 1 and self.dup_axis == "in":
            w_int = w_int.repeat(1, self.dup_weight, 1, 1)
        elif self.dup_weight > 1:
            w_int = w_int.repeat(self.dup_weight, 1, 1, 1)
            scale = scale.repeat(self.dup_weight)
        if self.dup_input > 1:
            w_int = w_int.view(self.out_channels, self.dup_input, self.in_channels, self.kernel, self.kernel).sum(1)
        return w_int, scale

    def accumulate(self, x_int: Tensor) -> tuple[Tensor, Tensor]:
        """(acc, multiplier): acc (N, out, H, W) integer-valued; the real output is acc * multiplier."""
        w_int, scale = self.effective_integer_weight()
        acc = F.conv2d(x_int, w_int, padding=self.kernel // 2)
        if not self.training and not (self.float_weight or self.relaxed_input):
            # The true accumulator is an integer below 2^24; rounding removes any error a fast
            # convolution algorithm may add, so eval mode is exact.
            acc = torch.round(acc)
        return acc, scale * self.in_scale

    def forward(self, x_int: Tensor) -> Tensor:
        acc, multiplier = self.accumulate(x_int)
        out = acc * multiplier.view(1, -1, 1, 1)
        if self.bias is not None:
            out = out + self.bias.view(1, -1, 1, 1)
        return out

    def extra_repr(self) -> str:
        kind = "float (training stage)" if self.float_weight else self.weight_kind
        return (
            f"{self.in_channels}x{self.dup_input}->{self.out_channels}, k={self.kernel}, {kind}, "
            f"dup_weight={self.dup_weight}({self.dup_axis}), stored={tuple(self.weight.shape)}"
        )
