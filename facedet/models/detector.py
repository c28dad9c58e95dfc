"""The YOLOv2-style one-class face detector, built from a ``ModelConfig``.

Input: BGR pixels as a float tensor (N, 3, H, W) with integer values 0..255 (the letterboxed
uint8 image, unnormalized; the model applies ``pixel_scale`` itself so that quantized models can
take the integer pixels directly). Output: the raw head map (N, A*5, H/stride, W/stride), decoded
by ``facedet.anchors.decode``.
"""

from __future__ import annotations

from torch import Tensor, nn

from facedet.config import ModelConfig
from facedet.models.layers import FloatConvBlock, QuantConvBlock
from facedet.models.quant import QuantConv2d


class FaceDetector(nn.Module):
    """Backbone of conv blocks + 1x1 detection head with len(anchors) * 5 outputs."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        blocks: list[nn.Module] = []
        in_channels = 3
        in_scale = config.pixel_scale  # value of one input unit: a pixel, then one code step
        for spec in config.layers:
            if config.quantized:
                blocks.append(
                    QuantConvBlock(in_channels, spec, in_scale, config.act_bits, config.act_step, config.dup_axis)
                )
                in_scale = config.act_step
            else:
                if spec.weight != "float" or spec.dup_weight > 1 or spec.dup_input > 1:
                    raise ValueError("a float (leaky) model takes float weights without duplication")
                blocks.append(FloatConvBlock(in_channels, spec))
            in_channels = spec.out_channels
        self.blocks = nn.ModuleList(blocks)
        head_out = config.num_anchors * 5
        self.head: nn.Module
        if config.quantized:
            self.head = QuantConv2d(
                in_channels,
                head_out,
                1,
                weight_kind=config.head_weight,
                in_scale=in_scale,
                dup_input=config.head_dup_input,
                bias=True,
            )
        else:
            self.head = nn.Conv2d(in_channels, head_out, 1, bias=True)
        self._init_head_bias()

    def _init_head_bias(self) -> None:
        # Objectness starts at sigmoid(-4.6) ~ 1%: most cells hold no face, so training does not
        # begin with a flood of confident false positives.
        bias = self.head.bias
        assert bias is not None
        bias.data.zero_()
        bias.data[4::5] = -4.6

    def forward(self, pixels: Tensor) -> Tensor:
        return self.forward_layers(pixels)[-1]

    def forward_layers(self, pixels: Tensor) -> list[Tensor]:
        """Every block's output (codes for quantized models, after pooling), then the raw head map."""
        x = pixels if self.config.quantized else pixels * self.config.pixel_scale
        outputs = []
        for block in self.blocks:
            x = block(x)
            outputs.append(x)
        outputs.append(self.head(x))
        return outputs
