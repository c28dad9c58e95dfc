"""Exponential moving average of a model's weights (the YOLOv5 / timm ``ModelEmaV2`` recipe).

The averaged copy is what gets validated, selected and exported: it is smoother than the raw
weights at the end of a noisy CPU-sized schedule. For binary-weight models the average is taken
over the latent float weights, which is what the sign of the exported weights is read from.

Decay warms up as ``min(decay, 1 - (1 + updates) ** -power)`` (timm's ``ModelEmaV3`` warm-up,
power 3/4: a ~60-step average after one 239-step epoch, ~580 steps after 4,780), so that the
first updates, while the model is still far from the average's start, do not freeze it. (The
earlier ramp, ``decay * (1 - exp(-updates / 2000))``, was still 0.91 after 4,780 steps: an
average over ~11 steps, which is hardly an average at the length of our runs.)
"""

from __future__ import annotations

import copy

import torch
from torch import nn


class ModelEMA:
    """An eval-mode copy of ``model`` whose float tensors track the model's, averaged over steps.

    Args:
        model: the model being trained (unwrapped, not DDP).
        decay: the largest decay per update (0.9998: an average over at most ~5,000 steps).
        power: warm-up exponent; the decay after n updates is at most 1 - (1 + n) ** -power.
        updates: updates already made (when resuming).
    """

    def __init__(self, model: nn.Module, decay: float = 0.9998, power: float = 0.75, updates: int = 0) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
        if power <= 0.0:
            raise ValueError(f"EMA warm-up power must be > 0, got {power}")
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)
        self.decay = decay
        self.power = power
        self.updates = updates

    def current_decay(self) -> float:
        return min(self.decay, 1.0 - float((1.0 + self.updates) ** -self.power))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """One step: ema = d * ema + (1 - d) * model for floating tensors; integer buffers copied."""
        self.updates += 1
        d = self.current_decay()
        source = model.state_dict()
        for name, value in self.module.state_dict().items():
            if value.dtype.is_floating_point:
                value.mul_(d).add_(source[name].detach(), alpha=1.0 - d)
            else:
                value.copy_(source[name])

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.module.state_dict()

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.module.load_state_dict(state)
