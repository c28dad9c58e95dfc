"""Training stages of a quantized model: float -> binary weights -> binary weights + 2-bit codes.

A low-precision network trains more easily when its precision is lowered in steps, each stage
starting from the last (``facedet train --precision ... --init previous/best.pt``; Zhuang et al.,
"Towards effective low-bitwidth convolutional neural networks", CVPR 2018, docs/method.md §5):

- ``float``: every quantized convolution uses its latent float weights (scale 1), and every
  activation quantizer passes the clipped value ``clamp(x / step, 0, levels)`` without rounding.
- ``binary-weights``: the deployed weights (binary, int8 where the model keeps int8), activations
  still relaxed as above.
- ``full``: the deployed model (the default; what export and the integer engine compute).

The stages change how the modules compute, not what they hold: the parameters and buffers are the
same in every stage, so a checkpoint of any stage initializes any other, and the last stage's
checkpoint is an ordinary one. Exporting a checkpoint always gives the full-precision model.
"""

from __future__ import annotations

from torch import nn

from facedet.config import PRECISIONS
from facedet.models.quant import ActQuant, QuantConv2d


def set_precision(model: nn.Module, precision: str) -> None:
    """Put every quantized convolution and activation quantizer of ``model`` in ``precision``'s
    stage (in place; float models are left as they are)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    relaxed = precision != "full"
    for module in model.modules():
        if isinstance(module, QuantConv2d):
            module.float_weight = precision == "float"
            module.relaxed_input = relaxed
        elif isinstance(module, ActQuant):
            module.relaxed = relaxed


def model_precision(model: nn.Module) -> str:
    """The stage ``model`` is in (``full`` for a model without quantized modules)."""
    convs = [m for m in model.modules() if isinstance(m, QuantConv2d)]
    if any(m.float_weight for m in convs):
        return "float"
    if any(m.relaxed_input for m in convs):
        return "binary-weights"
    return "full"
