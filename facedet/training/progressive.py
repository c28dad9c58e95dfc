"""Progressive low-precision training: full-precision ancillary convolutions that fade out.

"Progressive learning of low-precision networks" (docs/method.md §5): beside each low-precision
convolution a full-precision one of the same shape sees the same input, and its output, scaled
by ``weight``, is added to the low-precision output before batch-norm. ``weight`` falls linearly
from 1 to 0 over the first part of training, so the network leans on the easy-to-train float
path early and ends as the plain low-precision network: at ``weight == 0`` (and in eval mode,
whose folded integer path never calls the hooks) the model computes exactly what it computes
without the ancillary convolutions.

The ancillary convolutions live outside the model (forward hooks on each ``QuantConvBlock``'s
convolution), so the model's state dict, its weight average, export and the integer engine never
see them. They start at zero: a trained model keeps its function at the first step.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from facedet.models.layers import QuantConvBlock
from facedet.models.quant import QuantConv2d


class Ancillary(nn.Module):
    """One float convolution per quantized block of ``model``, added with weight ``weight``."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        blocks = [m for m in model.modules() if isinstance(m, QuantConvBlock)]
        if not blocks:
            raise ValueError("progressive training needs a quantized model (it has no quantized blocks)")
        self.convs = nn.ModuleList(
            nn.Conv2d(b.conv.in_channels, b.conv.out_channels, b.conv.kernel, padding=b.conv.kernel // 2, bias=False)
            for b in blocks
        )
        for conv in self.convs:
            nn.init.zeros_(conv.weight)
        # The weight as a tensor (torch.compile would recompile for every new python float) and
        # whether it is still above zero (one recompile when the float path switches off).
        self.register_buffer("scale", torch.ones(()))
        self.active = True
        self._handles = [
            block.conv.register_forward_hook(self._hook(conv)) for block, conv in zip(blocks, self.convs, strict=True)
        ]

    def _hook(self, ancillary: nn.Conv2d) -> Any:
        def add_float_path(module: QuantConv2d, inputs: tuple[Tensor, ...], output: Tensor) -> Tensor | None:
            if not module.training or not self.active:
                return None  # the plain low-precision output
            real_input = inputs[0] * module.in_scale  # codes or pixels -> real values, (N, C, H, W)
            return output + self.scale * ancillary(real_input.to(ancillary.weight.dtype))

        return add_float_path

    @property
    def weight(self) -> float:
        """The float path's weight, 1 -> 0."""
        return float(self.scale)

    def set_weight(self, weight: float) -> None:
        self.scale.fill_(weight)
        self.active = weight > 0.0

    def set_progress(self, step: int, fade_steps: int) -> float:
        """Set and return ``weight`` = 1 - step / fade_steps, floored at 0 (0 when fade_steps <= 0)."""
        self.set_weight(max(0.0, 1.0 - step / fade_steps) if fade_steps > 0 else 0.0)
        return self.weight

    def remove(self) -> None:
        """Detach the hooks (the model is plain again)."""
        for handle in self._handles:
            handle.remove()
        self._handles = []


def fade_steps(fraction: float, total_steps: int) -> int:
    """Steps over which the ancillary weight falls to zero: ``fraction`` of the run."""
    return max(1, round(fraction * total_steps))
