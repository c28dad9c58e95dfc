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


def test_slim_raw_takes_the_trained_weights_not_their_average(tmp_path: Path) -> None:
    path, model = _write(tmp_path, "dupnet-tinier-yolo")
    with pytest.raises(CheckpointError, match="no raw weights"):
        slim_checkpoint(path, tmp_path / "raw.pt", raw=True)
    data = torch.load(path, weights_only=True)
    data["train_model"] = {
        name: value + 1 if value.is_floating_point() else value for name, value in data["model"].items()
    }
    torch.save(data, path)
    raw, averaged = slim_checkpoint(path, tmp_path / "raw.pt", raw=True), slim_checkpoint(path, tmp_path / "ema.pt")
    raw_state, ema_state = load_model(raw)[0].state_dict(), load_model(averaged)[0].state_dict()
    name = next(n for n, v in raw_state.items() if v.is_floating_point())
    assert torch.equal(raw_state[name], ema_state[name] + 1)
    assert load_model(raw)[2]["slim"]["weights"] == "raw"


def test_foreign_and_missing_files_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_model(tmp_path / "absent.pt")
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {}}, foreign)
    with pytest.raises(CheckpointError, match="not a facedet checkpoint"):
        load_model(foreign)


class _MakesADirectory:
    """A pickle payload that calls ``os.mkdir`` when unpickled (the attack of issue 14)."""

    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self) -> tuple[object, tuple[str]]:
        import os

        return os.mkdir, (str(self.target),)


def test_crafted_checkpoint_is_refused_without_running_code(tmp_path: Path) -> None:
    config = model_config("dupnet-tinier-yolo", img_size=64)
    evil = tmp_path / "evil.pt"
    marker = tmp_path / "pwned"
    torch.save(
        {
            "format": "facedet-checkpoint",
            "format_version": 1,
            "model_config": config.to_dict(),
            "model": build_model(config).state_dict(),
            "payload": _MakesADirectory(marker),
        },
        evil,
    )
    with pytest.raises(CheckpointError, match="refused.*never run"):
        load_model(evil)
    assert not marker.exists()


def test_rng_state_survives_a_weights_only_round_trip(tmp_path: Path) -> None:
    import random

    import numpy as np

    from facedet.models.checkpoint import load_checkpoint, rng_state_from_plain, rng_state_to_plain

    random.seed(7)
    np.random.seed(7)
    np.random.normal()  # sets numpy's cached Gaussian
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    expected = (random.random(), np.random.random(), torch.rand(1).item())
    config = model_config("dupnet-tinier-yolo", img_size=64)
    path = save_checkpoint(
        tmp_path / "last.pt",
        {"model_config": config.to_dict(), "model": build_model(config).state_dict(), "rng": state},
    )
    # Stored as plain data: the strict loader reads it with no allow-list at all.
    raw = torch.load(path, weights_only=True)
    assert isinstance(raw["rng"]["python"], list) and torch.is_tensor(raw["rng"]["numpy"]["key"])
    back = load_checkpoint(path)["rng"]
    random.setstate(back["python"])
    np.random.set_state(back["numpy"])
    torch.set_rng_state(back["torch"])
    assert (random.random(), np.random.random(), torch.rand(1).item()) == expected
    assert rng_state_from_plain(rng_state_to_plain(state))["python"] == state["python"]


def test_older_checkpoint_with_numpy_rng_arrays_still_loads(tmp_path: Path) -> None:
    import numpy as np

    from facedet.models.checkpoint import load_checkpoint

    config = model_config("dupnet-tinier-yolo", img_size=64)
    legacy = tmp_path / "legacy.pt"
    np.random.seed(3)
    rng = {"numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    payload = {"format": "facedet-checkpoint", "format_version": 1, "model_config": config.to_dict()}
    torch.save({**payload, "model": build_model(config).state_dict(), "rng": rng}, legacy)  # as before issue 14
    back = load_checkpoint(legacy)["rng"]["numpy"]
    assert back[0] == "MT19937" and np.array_equal(back[1], rng["numpy"][1])


@pytest.mark.parametrize("shipped", sorted((Path(__file__).parents[1] / "weights").glob("*.pt")), ids=str)
def test_shipped_checkpoints_load_with_weights_only(shipped: Path) -> None:
    data = torch.load(shipped, map_location="cpu", weights_only=True)
    assert data["format"] == "facedet-checkpoint"
    model, config, _ = load_model(shipped)
    assert config.name == data["model_config"]["name"]


def test_checkpoint_without_model_config_and_directory_are_clear_errors(tmp_path: Path) -> None:
    broken = tmp_path / "broken.pt"
    torch.save({"format": "facedet-checkpoint", "format_version": 1, "model": {}}, broken)
    with pytest.raises(CheckpointError, match="without 'model_config'"):
        load_model(broken)
    with pytest.raises(CheckpointError, match="is a directory"):
        load_model(tmp_path)
