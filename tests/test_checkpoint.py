"""Self-describing checkpoints: save/load round trip, slim fp16 copies, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from facedet.models import build_model, model_config
from facedet.models.checkpoint import CheckpointError, load_model, save_checkpoint, slim_checkpoint


def _write(tmp_path: Path, name: str) -> tuple[Path, torch.nn.Module]:
    config = model_config(name, img_size=64)
    torch.manual_seed(0)
    model = build_model(config).eval()
    optimizer = torch.optim.AdamW(model.parameters())
    path = save_checkpoint(
        tmp_path / "last.pt",
        {
            "model_config": config.to_dict(),
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "epoch": 3,
        },
    )
    return path, model


@pytest.mark.parametrize("name", ["dupnet-tinier-yolo", "tiny-yolo"])
def test_slim_half_checkpoint_rebuilds_the_model(tmp_path: Path, name: str) -> None:
    path, model = _write(tmp_path, name)
    slim = slim_checkpoint(path, tmp_path / "slim.pt", half=True)
    assert slim.stat().st_size < path.stat().st_size
    rebuilt, config, data = load_model(slim)
    assert config.name == name and data["epoch"] == 3 and "optimizer" not in data
    x = torch.randint(0, 256, (1, 3, 64, 64)).float()
    with torch.no_grad():
        expected, got = model(x), rebuilt(x)
    # float16 storage rounds each weight to ~3 significant digits; outputs stay close.
    assert torch.allclose(expected, got, atol=0.05 * float(expected.abs().max()) + 1e-3)


def test_foreign_and_missing_files_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_model(tmp_path / "absent.pt")
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {}}, foreign)
    with pytest.raises(CheckpointError, match="not a facedet checkpoint"):
        load_model(foreign)
