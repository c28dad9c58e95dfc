"""Building blocks: float conv block, quantized conv block (with its exact folded eval path), pooling."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from facedet.config import ConvSpec
from facedet.models.quant import ActQuant, QuantConv2d, activation_codes


def pool(x: Tensor, kind: str) -> Tensor:
    """2x2 max-pool: ``max2`` stride 2; ``max2s1`` stride 1 after replicating the last row and
    column (darknet keeps the 13x13 map this way); ``none`` is the identity."""
    if kind == "max2":
        return F.max_pool2d(x, 2, 2)
    if kind == "max2s1":
        # Replicate padding written as concatenation: the same values, and torch.compile can
        # differentiate it (it cannot differentiate F.pad(mode="replicate") here).
        x = torch.cat([x, x[:, :, -1:, :]], dim=2)
        x = torch.cat([x, x[:, :, :, -1:]], dim=3)
        return F.max_pool2d(x, 2, 1)
    return x


class FloatConvBlock(nn.Module):
    """conv (no bias) -> batch-norm -> leaky ReLU(0.1) -> pool: one darknet layer."""

    def __init__(self, in_channels: int, spec: ConvSpec) -> None:
        super().__init__()
        self.spec = spec
        self.conv = nn.Conv2d(in_channels, spec.out_channels, spec.kernel, padding=spec.kernel // 2, bias=False)
        self.bn = nn.BatchNorm2d(spec.out_channels)

    def forward(self, x: Tensor) -> Tensor:
        return pool(F.leaky_relu(self.bn(self.conv(x)), 0.1), self.spec.pool)


class QuantConvBlock(nn.Module):
    """QuantConv2d -> batch-norm -> k-bit activation codes -> pool, on integer inputs.

    Training: the usual conv -> BN (batch statistics) -> quantizer with STE.
    Eval: BN and the quantizer step are folded into ``y = acc * s + b`` (float32, per channel;
    ``folded_affine``), codes = #{k : y >= k - 0.5}. The exporter reads ``folded_affine`` and
    searches the integer accumulator range for the exact thresholds of that arithmetic.
    """

    def __init__(
        self, in_channels: int, spec: ConvSpec, in_scale: float, act_bits: int, act_step: float, dup_axis: str
    ) -> None:
        super().__init__()
        self.spec = spec
        self.conv = QuantConv2d(
            in_channels,
            spec.out_channels,
            spec.kernel,
            weight_kind=spec.weight,
            in_scale=in_scale,
            dup_weight=spec.dup_weight,
            dup_axis=dup_axis,
            dup_input=spec.dup_input,
        )
        self.bn = nn.BatchNorm2d(spec.out_channels)
        self.act = ActQuant(act_bits, act_step)

    @torch.no_grad()
    def folded_affine(self) -> tuple[Tensor, Tensor]:
        """(s, b), float32 (out,): the eval-mode output in quantizer steps is ``acc * s + b``."""
        _, weight_scale = self.conv.effective_integer_weight()
        multiplier = weight_scale * self.conv.in_scale  # real value of one accumulator unit
        inv_std = 1.0 / torch.sqrt(self.bn.running_var + self.bn.eps)
        gamma_over_std = self.bn.weight * inv_std
        s = multiplier * gamma_over_std / self.act.step
        b = (self.bn.bias - self.bn.running_mean * gamma_over_std) / self.act.step
        return s.float().contiguous(), b.float().contiguous()

    def pre_pool_codes(self, x_int: Tensor) -> Tensor:
        if self.training or self.act.relaxed:  # a relaxed stage has no integer codes to fold into
            return self.act(self.bn(self.conv(x_int)))
        acc, _ = self.conv.accumulate(x_int)
        s, b = self.folded_affine()
        y = acc * s.view(1, -1, 1, 1)  # two separate float32 ops, as the exporter emulates
        y = y + b.view(1, -1, 1, 1)
        return activation_codes(y, self.act.levels)

    def forward(self, x_int: Tensor) -> Tensor:
        return pool(self.pre_pool_codes(x_int), self.spec.pool)
