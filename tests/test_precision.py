"""Precision stages of a quantized model (float -> binary weights -> deployed), chained by --init."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from facedet.cli import main
from facedet.models import build_model, model_config
from facedet.models.checkpoint import load_checkpoint
from facedet.models.precision import model_precision, set_precision
from facedet.models.quant import ActQuant, QuantConv2d
from facedet.training.config import TrainConfig


def _model_and_input(name: str = "ifq-tinier-yolo") -> tuple[torch.nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    model = build_model(model_config(name, img_size=64))
    return model, torch.randint(0, 256, (2, 3, 64, 64)).float()


def test_relaxed_activation_is_the_clipped_value_with_the_quantizer_gradient() -> None:
    quantizer = ActQuant(bits=2, step=0.5)
    quantizer.relaxed = True
    x = torch.tensor([-0.3, 0.1, 0.6, 1.4, 2.0], requires_grad=True)
    y = quantizer(x)
    # x / step = -0.6, 0.2, 1.2, 2.8, 4.0 -> clipped to [0, 3], not rounded.
    torch.testing.assert_close(y, torch.tensor([0.0, 0.2, 1.2, 2.8, 3.0]))
    y.sum().backward()
    assert x.grad is not None
    torch.testing.assert_close(x.grad, torch.tensor([0.0, 2.0, 2.0, 2.0, 0.0]))  # 1/step inside, 0 outside


def test_float_stage_convolves_with_the_latent_weights() -> None:
    torch.manual_seed(1)
    conv = QuantConv2d(4, 6, 3, weight_kind="binary", in_scale=0.5, dup_weight=2)  # stored (6, 2, 3, 3)
    x = torch.rand(1, 4, 5, 5)
    conv.float_weight = True
    expected = F.conv2d(x, conv.weight.repeat(1, 2, 1, 1), padding=1) * 0.5  # tiled, scale 1
    torch.testing.assert_close(conv(x), expected)
    conv.float_weight = False
    sign = torch.where(conv.weight >= 0, 1.0, -1.0)
    alpha = conv.weight.abs().mean(dim=(1, 2, 3))
    binary = F.conv2d(x, sign.repeat(1, 2, 1, 1), padding=1) * (alpha * 0.5).view(1, -1, 1, 1)
    torch.testing.assert_close(conv(x), binary)


def test_stages_share_the_parameters_and_return_to_the_deployed_model() -> None:
    model, x = _model_and_input()
    keys = set(model.state_dict())
    model.eval()
    with torch.no_grad():
        deployed = model(x)
        outputs = {}
        for stage in ("float", "binary-weights"):
            set_precision(model, stage)
            assert model_precision(model) == stage
            assert set(model.state_dict()) == keys  # so any stage's checkpoint initializes any other
            outputs[stage] = model(x)
            assert not torch.equal(outputs[stage], deployed)
        assert not torch.equal(outputs["float"], outputs["binary-weights"])
        set_precision(model, "full")
        assert model_precision(model) == "full"
        torch.testing.assert_close(model(x), deployed, rtol=0, atol=0)


def test_relaxed_eval_runs_the_batchnorm_forward_without_rounding() -> None:
    model, x = _model_and_input()
    set_precision(model, "binary-weights")
    model.eval()
    block = model.blocks[0]
    with torch.no_grad():
        codes = block.pre_pool_codes(x)
        expected = torch.clamp(block.bn(block.conv(x)) / block.act.step, 0, block.act.levels)
    torch.testing.assert_close(codes, expected)
    assert (codes != codes.round()).any()  # real values between the code levels


def test_float_models_and_unknown_stages_are_refused() -> None:
    with pytest.raises(ValueError, match="precision must be one of"):
        TrainConfig(precision="ternary")
    model, _ = _model_and_input()
    with pytest.raises(ValueError, match="precision must be one of"):
        set_precision(model, "int4")


def _train(wider_root: Path, tmp_path: Path, out: str, *extra: str, model: str = "ifq-tinier-yolo") -> int:
    argv = [
        "train", "--model", model, "--data-root", str(wider_root), "--img-size", "64",
        "--batch-size", "4", "--out", str(tmp_path / out), "--cache-dir", str(tmp_path / "cache"),
        "--workers", "0", "--threads", "1", "--no-progress", "--deploy-size", "64", "--epochs", "1",
        "--max-steps", "1", *extra,
    ]  # fmt: skip
    torch_threads = torch.get_num_threads()
    try:
        return main(argv)
    finally:
        torch.set_num_threads(torch_threads)


def test_the_schedule_chains_through_init(wider_root: Path, tmp_path: Path) -> None:
    assert _train(wider_root, tmp_path, "float", "--precision", "float") == 0
    float_ckpt = tmp_path / "float" / "last.pt"
    assert _train(wider_root, tmp_path, "binary", "--precision", "binary-weights", "--init", str(float_ckpt)) == 0
    binary_ckpt = tmp_path / "binary" / "last.pt"
    assert _train(wider_root, tmp_path, "full", "--init", str(binary_ckpt)) == 0
    for stage, out in (("float", "float"), ("binary-weights", "binary"), ("full", "full")):
        assert json.loads((tmp_path / out / "train_config.json").read_text())["precision"] == stage
    # Every stage's checkpoint is an ordinary one: the same tensors, the same model config.
    states = [load_checkpoint(tmp_path / out / "last.pt") for out in ("float", "binary", "full")]
    assert {frozenset(s["model"]) for s in states} == {frozenset(states[0]["model"])}
    assert states[0]["model_config"] == states[2]["model_config"]
    # The second stage started from the first one's weights and trained them one step further.
    conv = "blocks.1.conv.weight"
    before, after = states[0]["model"][conv].float(), states[1]["model"][conv].float()
    assert 0 < (after - before).abs().max() < 0.05 * before.abs().max()


def test_a_float_model_refuses_a_precision_stage(
    wider_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _train(wider_root, tmp_path, "tiny", "--precision", "float", model="tiny-yolo") != 0
    assert "needs a quantized model" in capsys.readouterr().err
