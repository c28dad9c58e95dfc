"""The three detector presets: output shapes, size budgets, config round trips, registry errors."""

from __future__ import annotations

import json

import pytest
import torch

from facedet.config import ModelConfig
from facedet.model_summary import summarize, totals
from facedet.models import MODELS, build_model, model_config

NAMES = ("tiny-yolo", "ifq-tinier-yolo", "dupnet-tinier-yolo")
DUPNET_VARIANTS = ("dupnet-tinier-yolo-out", "dupnet-tinier-yolo-c5x4")
IFQ_BUDGET_BYTES = 246_682  # 240.9 KiB (DupNet paper, docs/method.md §3)
DUPNET_BUDGET_BYTES = 37_786  # 36.9 KiB


def test_registry_holds_the_three_families_and_the_dupnet_variants() -> None:
    assert sorted(MODELS) == sorted(NAMES + DUPNET_VARIANTS)


@pytest.mark.parametrize("name", DUPNET_VARIANTS)
def test_dupnet_variants_fit_the_budget_and_name_themselves(name: str) -> None:
    config = model_config(name)
    assert config.name == name  # a checkpoint says which variant it holds
    preset = totals(summarize(model_config("dupnet-tinier-yolo")))
    variant = totals(summarize(config))
    assert variant["stored_bytes"] <= DUPNET_BUDGET_BYTES
    assert variant["macs"] < totals(summarize(model_config("ifq-tinier-yolo")))["macs"]
    if name.endswith("-out"):
        assert config.dup_axis == "out" and variant["stored_bytes"] == preset["stored_bytes"]
    else:
        assert [spec.dup_weight for spec in config.layers] == [1, 1, 1, 4, 4, 16, 16]
        assert variant["stored_bytes"] == preset["stored_bytes"] + 2_304


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("img_size", [64, 96])
def test_output_shape(name: str, img_size: int) -> None:
    torch.manual_seed(0)
    config = model_config(name, img_size=img_size)
    assert config.stride == 32 and config.num_anchors == 5
    model = build_model(config).eval()
    pixels = torch.randint(0, 256, (2, 3, img_size, img_size)).float()
    with torch.no_grad():
        out = model(pixels)
        layers = model.forward_layers(pixels)
    grid = img_size // 32
    assert out.shape == (2, config.num_anchors * 5, grid, grid)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(layers[-1], out)
    if config.quantized:  # quantized blocks emit 2-bit codes
        for codes in layers[:-1]:
            assert set(codes.unique().tolist()) <= {0.0, 1.0, 2.0, 3.0}


@pytest.mark.parametrize("name", NAMES)
def test_summary_parameters_match_the_torch_model(name: str) -> None:
    config = model_config(name)
    model = build_model(config)
    assert totals(summarize(config))["params"] == sum(p.numel() for p in model.parameters())


def test_size_budgets() -> None:
    ifq = totals(summarize(model_config("ifq-tinier-yolo")))
    dupnet = totals(summarize(model_config("dupnet-tinier-yolo")))
    assert ifq["stored_bytes"] <= IFQ_BUDGET_BYTES
    assert dupnet["stored_bytes"] <= DUPNET_BUDGET_BYTES
    # DupNet is the cheaper network to run, too (at the default and at the training size).
    assert dupnet["macs"] < ifq["macs"]
    for size in (256, 416):
        assert (
            totals(summarize(model_config("dupnet-tinier-yolo"), size))["macs"]
            < totals(summarize(model_config("ifq-tinier-yolo"), size))["macs"]
        )


def test_dupnet_stores_reduced_kernels() -> None:
    config = model_config("dupnet-tinier-yolo")
    model = build_model(config)
    rows = summarize(config)
    for block, spec, row in zip(model.blocks, config.layers, rows, strict=False):
        assert block.conv.weight.numel() == row.stored_weights
        # dup_weight d stores 1/d of the (d_input-wide) kernel.
        in_channels = row.in_channels * spec.dup_input
        assert row.stored_weights * spec.dup_weight == spec.out_channels * in_channels * spec.kernel**2


@pytest.mark.parametrize("name", NAMES)
def test_config_round_trip(name: str) -> None:
    config = model_config(name, img_size=128)
    assert ModelConfig.from_dict(config.to_dict()) == config
    # Through JSON (lists instead of tuples), as stored next to checkpoints.
    assert ModelConfig.from_dict(json.loads(config.to_json())) == config
    assert config.with_(img_size=160) != config and config.with_(img_size=160).img_size == 160


def test_unknown_model_and_invalid_configs() -> None:
    with pytest.raises(ValueError, match="unknown model 'yolo-v9'; choose one of"):
        model_config("yolo-v9")
    with pytest.raises(ValueError, match="not a multiple of stride 32"):
        model_config("tiny-yolo", img_size=100)
    with pytest.raises(ValueError, match="unknown ModelConfig fields"):
        ModelConfig.from_dict({**model_config("tiny-yolo").to_dict(), "depth": 3})
