"""Progressive low-precision training: ancillary float convolutions that fade to the plain model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from facedet.cli import main
from facedet.models import build_model, model_config
from facedet.models.checkpoint import load_checkpoint
from facedet.training.progressive import Ancillary, fade_steps


def _model_and_input(name: str = "ifq-tinier-yolo") -> tuple[torch.nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    model = build_model(model_config(name, img_size=64))
    return model, torch.randint(0, 256, (2, 3, 64, 64)).float()


def test_zero_weight_or_eval_mode_is_the_plain_model() -> None:
    model, x = _model_and_input()
    model.train()
    plain = model(x)
    ancillary = Ancillary(model)
    # Zero-initialised: a trained model keeps its function at the first step.
    torch.testing.assert_close(model(x), plain, rtol=0, atol=0)
    with torch.no_grad():
        for conv in ancillary.convs:
            conv.weight.normal_(0, 0.05)
    changed = model(x)
    assert not torch.allclose(changed, plain)
    ancillary.set_weight(0.0)
    torch.testing.assert_close(model(x), plain, rtol=0, atol=0)
    # Eval mode (the folded integer path) never uses the float path, whatever the weight.
    ancillary.set_weight(1.0)
    model.eval()
    with torch.no_grad():
        evaluated = model(x)
    ancillary.remove()
    with torch.no_grad():
        torch.testing.assert_close(evaluated, model(x), rtol=0, atol=0)


def test_the_float_path_is_trained() -> None:
    model, x = _model_and_input("dupnet-tinier-yolo")
    model.train()
    ancillary = Ancillary(model)
    assert len(ancillary.convs) == len(model.blocks)  # one per quantized block
    model(x).square().mean().backward()
    # d(out)/d(ancillary kernel) = weight * input, non-zero even though the kernel starts at zero.
    assert all(conv.weight.grad is not None and conv.weight.grad.abs().sum() > 0 for conv in ancillary.convs)


def test_weight_falls_linearly_to_zero() -> None:
    model, _ = _model_and_input()
    ancillary = Ancillary(model)
    fade = fade_steps(0.5, total_steps=100)
    assert fade == 50
    assert [ancillary.set_progress(s, fade) for s in (0, 25, 50, 90)] == [1.0, 0.5, 0.0, 0.0]


def test_float_models_are_refused() -> None:
    model, _ = _model_and_input("tiny-yolo")
    with pytest.raises(ValueError, match="needs a quantized model"):
        Ancillary(model)


def test_progressive_run_checkpoints_and_resumes(wider_root: Path, tmp_path: Path) -> None:
    out, cache = tmp_path / "run", tmp_path / "cache"
    argv = [
        "train", "--model", "dupnet-tinier-yolo", "--data-root", str(wider_root), "--img-size", "64",
        "--batch-size", "4", "--out", str(out), "--cache-dir", str(cache), "--workers", "0", "--threads", "1",
        "--no-progress", "--log-every", "1", "--deploy-size", "64", "--epochs", "2", "--progressive", "0.5",
    ]  # fmt: skip
    torch_threads = torch.get_num_threads()
    try:
        assert main([*argv, "--max-steps", "1"]) == 0
        assert main([*argv, "--resume"]) == 0
    finally:
        torch.set_num_threads(torch_threads)
    data = load_checkpoint(out / "last.pt")
    assert data["step"] == 4 and "ancillary" in data
    # The model itself (what export reads) holds no ancillary tensors.
    plain = build_model(model_config("dupnet-tinier-yolo", img_size=64)).state_dict()
    assert set(data["model"]) == set(plain)
    weights = [json.loads(line)["ancillary_weight"] for line in (out / "log.jsonl").read_text().splitlines()
               if json.loads(line)["type"] == "step"]  # fmt: skip
    assert weights == [1.0, 0.5, 0.0, 0.0]  # 4 steps in all, faded over the first half
