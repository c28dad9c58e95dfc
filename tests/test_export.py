"""Folding conv + BN + quantizer into integer thresholds, and the export of whole models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from facedet.config import ConvSpec, ModelConfig
from facedet.engine import IntEngine
from facedet.engine.fold import fold_thresholds
from facedet.export import ExportError, export_checkpoint, export_model, fold_block, verify_against_torch
from facedet.model_summary import summarize, totals
from facedet.models import build_model, model_config
from facedet.models.layers import QuantConvBlock
from facedet.models.quant import activation_codes
from facedet.testing import randomize_bn


def _codes_by_thresholds(acc: np.ndarray, thresholds: np.ndarray, down: np.ndarray) -> np.ndarray:
    # acc (N,), thresholds (C, L), down (C,) -> (C, N) codes, straight from the definition
    up = (acc[None, None, :] >= thresholds[:, :, None]).sum(1)
    dn = (acc[None, None, :] <= thresholds[:, :, None]).sum(1)
    return np.where(down[:, None], dn, up)


def test_threshold_boundaries_hand_computed() -> None:
    # y = 0.25 * acc - 0.5: y >= 0.5 <=> acc >= 4; y >= 1.5 <=> acc >= 8; y >= 2.5 <=> acc >= 12
    t, down = fold_thresholds(np.float32([0.25, -0.25, 0.0, 0.0]), np.float32([-0.5, -0.5, 1.0, 5.0]), 20, 3)
    assert t[0].tolist() == [4, 8, 12] and not down[0]
    # s < 0: y = -0.25 acc - 0.5 >= 0.5 <=> acc <= -4 (boundary value included)
    assert t[1].tolist() == [-4, -8, -12] and down[1]
    # s == 0: constant codes 1 (y = 1.0) and 3 (y = 5.0), by sentinels
    assert t[2].tolist() == [-20, 21, 21] and t[3].tolist() == [-20, -20, -20]


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("weight", ["binary", "int8"])
def test_fold_equals_torch_quantizer_on_every_accumulator(seed: int, weight: str) -> None:
    """Thresholds reproduce the torch eval arithmetic on *every* integer in the range, which
    includes the values exactly at and next to each threshold."""
    torch.manual_seed(seed)
    block = QuantConvBlock(8, ConvSpec(12, weight=weight), in_scale=0.538, act_bits=2, act_step=0.538, dup_axis="in")
    randomize_bn(block, seed)
    block.eval()
    layer = fold_block(block, "conv", 8, 3, 3)
    s, b = block.folded_affine()
    acc = torch.arange(-layer.bound, layer.bound + 1, dtype=torch.float32)
    y = acc[None, :] * s[:, None]
    y = y + b[:, None]
    expected = activation_codes(y, 3).numpy()
    got = _codes_by_thresholds(np.arange(-layer.bound, layer.bound + 1), layer.thresholds, layer.down)
    assert np.array_equal(expected, got)
    assert layer.down.any()  # negative BN scales were exercised


def test_folded_affine_equals_conv_bn_quantizer() -> None:
    """The folded eval path equals the unfolded conv -> BN -> quantizer away from float ties."""
    torch.manual_seed(0)
    block = QuantConvBlock(6, ConvSpec(10, weight="binary"), in_scale=0.538, act_bits=2, act_step=0.538, dup_axis="in")
    randomize_bn(block, 1)
    block.eval()
    x = torch.randint(0, 4, (2, 6, 9, 9)).float()
    with torch.no_grad():
        unfolded = block.act(block.bn(block.conv(x)))  # real-valued conv, BN with running stats, quantizer
        folded = block.pre_pool_codes(x)
    assert torch.equal(unfolded, folded)


def _tiny(
    name: str, layers: tuple[ConvSpec, ...], head_weight: str = "binary", head_dup: int = 1, axis: str = "in"
) -> ModelConfig:
    return ModelConfig(
        name=name,
        img_size=32,
        anchors=((6.0, 8.0), (16.0, 20.0)),
        layers=layers,
        activation="hwgq",
        head_weight=head_weight,
        head_dup_input=head_dup,
        dup_axis=axis,
    )


def test_export_detects_a_mismatch(tmp_path: Path) -> None:
    config = _tiny("t", (ConvSpec(8, pool="max2", weight="int8"), ConvSpec(8, weight="binary")))
    model = build_model(config)
    randomize_bn(model)
    path = export_model(model, config, tmp_path / "t.fdet")
    engine = IntEngine.load(path)
    with torch.no_grad():
        model.blocks[1].bn.bias.add_(5.0)  # the torch model changes; the file does not
    with pytest.raises(ExportError, match="conv2 differs"):
        verify_against_torch(engine, model, [np.full((32, 32, 3), 100, np.uint8)])


@pytest.mark.parametrize(
    "name,limit",
    [
        ("dupnet-tinier-yolo", 37_786),
        ("dupnet-tinier-yolo-out", 37_786),
        ("dupnet-tinier-yolo-c5x4", 37_786),
        ("ifq-tinier-yolo", 246_682),
    ],
)
def test_preset_file_sizes(tmp_path: Path, name: str, limit: int) -> None:
    config = model_config(name, img_size=64)
    model = build_model(config)
    randomize_bn(model)
    path = export_model(
        model, config, tmp_path / f"{name}.fdet", metrics={"fddb_disc_tpr_1000fp": 0.88, "loss": [1, 2]}
    )
    size = path.stat().st_size
    engine = IntEngine.load(path)
    assert size <= limit
    assert engine.stored_bytes == totals(summarize(config))["stored_bytes"]
    assert engine.info["metrics"] == {"fddb_disc_tpr_1000fp": 0.88}  # non-scalars are dropped


def test_export_checkpoint(tmp_path: Path) -> None:
    from facedet.models.checkpoint import save_checkpoint

    config = _tiny(
        "t", (ConvSpec(8, pool="max2", weight="binary", dup_input=2), ConvSpec(8, pool="max2", weight="binary"))
    )
    model = build_model(config)
    randomize_bn(model)
    ckpt = save_checkpoint(
        tmp_path / "c.pt",
        {"model_config": config.to_dict(), "model": model.state_dict(), "epoch": 3, "metrics": {"fddb": 0.5}},
    )
    engine = IntEngine.load(export_checkpoint(ckpt, tmp_path / "c.fdet"))
    assert engine.info["provenance"]["epoch"] == 3
    assert engine.info["provenance"]["checkpoint"] == "c.pt"
    assert engine.info["metrics"] == {"fddb": 0.5}


def test_int8_export_of_float_model(tmp_path: Path) -> None:
    """Tiny-YOLO (float) -> 8-bit integers: runs in the engine, close to the float model."""
    import cv2

    from facedet.export import compare_with_float, verification_images

    config = ModelConfig(
        name="tiny-yolo",
        img_size=64,
        anchors=((6.0, 8.0), (16.0, 20.0)),
        layers=(ConvSpec(8, pool="max2"), ConvSpec(16, pool="max2"), ConvSpec(32, pool="max2s1")),
    )
    torch.manual_seed(0)
    model = build_model(config)
    randomize_bn(model, 4, negative=0.0, zero=0.0)
    model.eval()
    rng = np.random.default_rng(0)
    calibration = [cv2.resize(rng.integers(0, 256, (6, 6, 3)).astype(np.uint8), (80, 64)) for _ in range(4)]
    engine = IntEngine.load(export_model(model, config, tmp_path / "t.fdet", calibration_images=calibration))
    assert engine.kind == "int8" and engine.info["provenance"]["calibration_images"] == 4
    assert engine.manifest["layers"][0]["op"] == "conv_requant"
    stats = compare_with_float(engine, model, verification_images(config, calibration))
    with torch.no_grad():
        scale = float(model(torch.zeros(1, 3, 64, 64) + 128).abs().max())
    assert stats["raw_max_abs_diff"] < 0.05 * max(scale, 1.0)
    codes = engine.layer_outputs(verification_images(config, calibration)[0])
    assert codes[0].dtype == np.int8 and len(np.unique(codes[1])) > 10
