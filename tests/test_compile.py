"""`facedet train --compile`: the compiled model computes what the eager one does, forward and backward."""

from __future__ import annotations

import pytest
import torch

from facedet.models import build_model, model_config
from facedet.models.precision import set_precision


@pytest.mark.slow
@pytest.mark.parametrize("name", ["dupnet-tinier-yolo"])  # quantizers (STE), duplication, max2s1 pool
@pytest.mark.parametrize("precision", ["full", "float"])  # and the relaxed first training stage
def test_compiled_model_matches_eager(name: str, precision: str) -> None:
    torch.manual_seed(0)
    model = build_model(model_config(name, img_size=64)).train()
    set_precision(model, precision)
    compiled = torch.compile(model)
    pixels = torch.randint(0, 256, (2, 3, 64, 64)).float()
    eager_out = model(pixels)
    eager_out.square().mean().backward()
    eager_grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad(set_to_none=True)
    compiled_out = compiled(pixels)
    compiled_out.square().mean().backward()
    # The replicate-padded stride-1 pool (max2s1) is written as concatenation so that this works.
    torch.testing.assert_close(compiled_out, eager_out, rtol=1e-4, atol=1e-4)
    for p, g in zip(model.parameters(), eager_grads, strict=True):
        torch.testing.assert_close(p.grad, g, rtol=1e-3, atol=1e-4)
