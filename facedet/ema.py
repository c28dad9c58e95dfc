"""Exponential moving average of a model's weights (the YOLOv5 / timm ``ModelEmaV2`` recipe).

The averaged copy is what gets validated, selected and exported: it is smoother than the raw
weights at the end of a noisy CPU-sized schedule. For binary-weight models the average is taken
over the latent float weights, which is what the sign of the exported weights is read from.

Decay ramps up as ``decay * (1 - exp(-updates / ramp))`` so that the first updates, while the
model is still far from the average's start, do not freeze it.
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn


class ModelEMA:
    """An eval-mode copy of ``model`` whose float tensors track the model's, averaged over steps.

    Args:
        model: the model being trained (unwrapped, not DDP).
        decay: asymptotic decay per update (0.9998 ~ an average over the last ~5,000 steps).
        ramp: updates over which the decay ramps up (steps).
        updates: updates already made (when resuming).
    """

    def __init__(self, model: nn.Module, decay: float = 0.9998, ramp: float = 2000.0, updates: int = 0) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)
        self.decay = decay
        self.ramp = ramp
        self.updates = updates

    def current_decay(self) -> float:
        return self.decay * (1.0 - math.exp(-self.updates / self.ramp))

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
