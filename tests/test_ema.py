"""Weight EMA: the average follows the hand-computed recurrence, integer buffers are copied."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from facedet.ema import ModelEMA


def test_ema_follows_the_ramped_recurrence() -> None:
    model = nn.Sequential(nn.Linear(2, 1, bias=False), nn.BatchNorm1d(1))
    with torch.no_grad():
        model[0].weight.fill_(1.0)
    ema = ModelEMA(model, decay=0.9, ramp=2.0)
    expected = 1.0
    for step, value in enumerate((3.0, 5.0, -1.0), start=1):
        with torch.no_grad():
            model[0].weight.fill_(value)
        model[1].num_batches_tracked += 1
        ema.update(model)
        d = 0.9 * (1 - math.exp(-step / 2.0))
        expected = d * expected + (1 - d) * value
        assert float(ema.module[0].weight[0, 0]) == pytest.approx(expected, rel=1e-6)
        assert int(ema.module[1].num_batches_tracked) == step  # integer buffers: copied, not averaged
    # The average is a separate, frozen, eval-mode copy.
    assert not ema.module.training and not any(p.requires_grad for p in ema.module.parameters())
    assert float(model[0].weight.detach()[0, 0]) == -1.0


def test_ema_state_round_trips_and_rejects_bad_decay() -> None:
    model = nn.Linear(3, 2)
    ema = ModelEMA(model, decay=0.5)
    ema.update(model)
    other = ModelEMA(nn.Linear(3, 2), decay=0.5)
    other.load_state_dict(ema.state_dict())
    for key, value in ema.state_dict().items():
        assert torch.equal(other.state_dict()[key], value)
    with pytest.raises(ValueError, match="decay"):
        ModelEMA(model, decay=1.0)
