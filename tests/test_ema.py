"""Weight EMA: the average follows the hand-computed recurrence, integer buffers are copied."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from facedet.ema import ModelEMA


def test_ema_follows_the_warmed_up_recurrence() -> None:
    model = nn.Sequential(nn.Linear(2, 1, bias=False), nn.BatchNorm1d(1))
    with torch.no_grad():
        model[0].weight.fill_(1.0)
    ema = ModelEMA(model, decay=0.45, power=0.5)
    expected = 1.0
    for step, value in enumerate((3.0, 5.0, -1.0), start=1):
        with torch.no_grad():
            model[0].weight.fill_(value)
        model[1].num_batches_tracked += 1
        ema.update(model)
        d = min(0.45, 1 - 1 / math.sqrt(1 + step))  # 0.293, 0.423, then capped at 0.45
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
    with pytest.raises(ValueError, match="power"):
        ModelEMA(model, power=0.0)


def test_ema_decay_reaches_a_real_average_within_a_short_run() -> None:
    """After the 4,780 steps of a 20-epoch run the default averages over hundreds of steps."""
    ema = ModelEMA(nn.Linear(1, 1), updates=4780)
    assert 1 / (1 - ema.current_decay()) > 500
    assert ModelEMA(nn.Linear(1, 1), updates=10**9).current_decay() == 0.9998
