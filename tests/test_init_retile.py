"""--init across DupNet duplication factors: a stored kernel re-cut to another input-axis factor."""

from __future__ import annotations

from pathlib import Path

import torch

from facedet.models import build_model, dupnet_tinier_yolo_config, model_config
from facedet.models.checkpoint import save_checkpoint
from facedet.testing import randomize_bn
from facedet.training.checkpointing import init_from, retile_input_channels


def _saved_preset(tmp_path: Path) -> tuple[torch.nn.Module, Path]:
    torch.manual_seed(0)
    config = model_config("dupnet-tinier-yolo", img_size=64)
    model = build_model(config)
    randomize_bn(model)
    path = save_checkpoint(tmp_path / "preset.pt", {"model_config": config.to_dict(), "model": model.state_dict()})
    return model.eval(), path


def test_recut_shapes_and_values() -> None:
    source = torch.arange(2 * 4 * 1 * 1, dtype=torch.float32).view(2, 4, 1, 1)
    finer = retile_input_channels(source, torch.Size((2, 8, 1, 1)))
    assert finer is not None and torch.equal(finer[:, :4], source) and torch.equal(finer[:, 4:], source)
    coarser = retile_input_channels(source, torch.Size((2, 2, 1, 1)))
    assert coarser is not None
    torch.testing.assert_close(coarser, (source[:, :2] + source[:, 2:]) / 2)  # channels j and j + 2 merge
    assert retile_input_channels(source, torch.Size((3, 8, 1, 1))) is None  # other outputs
    assert retile_input_channels(source, torch.Size((2, 3, 1, 1))) is None  # no common factor


def test_a_smaller_factor_starts_with_the_same_function(tmp_path: Path) -> None:
    preset, path = _saved_preset(tmp_path)
    # conv5's factor 8 -> 4: the re-cut kernel repeats the stored one, so the network is unchanged.
    variant = build_model(dupnet_tinier_yolo_config(img_size=64, dup_weight=(1, 1, 1, 2, 4, 16, 16)))
    init_from(variant, str(path))
    variant.eval()
    pixels = torch.randint(0, 256, (2, 3, 64, 64)).float()
    with torch.no_grad():
        torch.testing.assert_close(variant(pixels), preset(pixels), rtol=0, atol=0)


def test_the_c5x4_variant_takes_every_tensor(tmp_path: Path) -> None:
    _, path = _saved_preset(tmp_path)
    variant = build_model(model_config("dupnet-tinier-yolo-c5x4", img_size=64))
    init_from(variant, str(path))
    source = torch.load(path, weights_only=True)["model"]
    own = variant.state_dict()
    for name, value in own.items():
        if name in ("blocks.3.conv.weight", "blocks.4.conv.weight"):  # re-cut (conv4 merged, conv5 repeated)
            assert value.shape != source[name].shape
        else:
            assert torch.equal(value, source[name]), name
    torch.testing.assert_close(own["blocks.4.conv.weight"][:, :16], source["blocks.4.conv.weight"])


def test_duplicated_input_maps_are_not_recut(tmp_path: Path) -> None:
    # DupNet's first layer sees its input 4 times: repeating IFQ's kernel there would quadruple
    # the layer's output, so that kernel starts afresh; conv5 (input-axis duplication) is re-cut.
    torch.manual_seed(0)
    config = model_config("ifq-tinier-yolo", img_size=64)
    ifq = build_model(config)
    path = save_checkpoint(tmp_path / "ifq.pt", {"model_config": config.to_dict(), "model": ifq.state_dict()})
    dupnet = build_model(model_config("dupnet-tinier-yolo", img_size=64))
    fresh_first = dupnet.state_dict()["blocks.0.conv.weight"].clone()
    init_from(dupnet, str(path))
    own = dupnet.state_dict()
    assert torch.equal(own["blocks.0.conv.weight"], fresh_first)
    source = ifq.state_dict()["blocks.4.conv.weight"]  # (256, 128, 3, 3) -> (256, 16, 3, 3): groups of 8 averaged
    torch.testing.assert_close(own["blocks.4.conv.weight"], source.view(256, 8, 16, 3, 3).mean(dim=1))
