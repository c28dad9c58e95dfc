"""Self-describing training checkpoints: the model config travels inside.

A checkpoint is a ``torch.save`` dict:
``{"format": "facedet-checkpoint", "format_version": 1, "model_config": dict, "model": state_dict,
"train_config": dict, "epoch": int, "optimizer": ..., "rng": ..., "metrics": dict, ...}``.
``load_model(path)`` rebuilds the network from the checkpoint alone (nanoGPT's sample.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from facedet.atomic import write_atomically
from facedet.config import DEPLOY_IMG_SIZE_KEY, ModelConfig

FORMAT = "facedet-checkpoint"
FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint file that is missing, truncated, corrupt or not a facedet checkpoint."""


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> Path:
    """Write ``payload`` (must hold ``model_config`` and ``model``) atomically: temp file + rename."""
    data = {"format": FORMAT, "format_version": FORMAT_VERSION, **payload}
    if "model_config" not in data or "model" not in data:
        raise ValueError("a checkpoint needs 'model_config' and 'model'")
    return write_atomically(path, lambda tmp: torch.save(data, tmp))


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint, with a clear error for a missing, truncated or foreign file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        data = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # torch raises several types for truncated/corrupt zip archives
        raise CheckpointError(f"{path}: not a readable checkpoint (truncated or corrupt?): {exc}") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a facedet checkpoint (no format={FORMAT!r} entry)")
    if int(data.get("format_version", 0)) > FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format {data['format_version']} is newer than this facedet reads ({FORMAT_VERSION})"
        )
    return data


def load_model(path: str | Path) -> tuple[torch.nn.Module, ModelConfig, dict[str, Any]]:
    """(model in eval mode, its config, the raw checkpoint dict) rebuilt from the file alone."""
    from facedet.models import build_model

    data = load_checkpoint(path)
    config = ModelConfig.from_dict(data["model_config"])
    model = build_model(config)
    try:
        model.load_state_dict(data["model"])
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: weights do not fit the stored model config: {exc}") from exc
    model.eval()
    return model, config, data


def slim_checkpoint(src: str | Path, dst: str | Path, half: bool = False, deploy_img_size: int | None = None) -> Path:
    """Write a shippable copy of a checkpoint: model, config, metrics and the training record,
    without optimizer or RNG state; ``half`` stores float weights as float16 (they load back
    into the float32 model, which is how Tiny-YOLO's 63 MB fit the repository at half size);
    ``deploy_img_size`` stores the input size that export and detect then use by default."""
    data = load_checkpoint(src)
    state = {
        name: (tensor.half() if half and tensor.is_floating_point() else tensor)
        for name, tensor in data["model"].items()
    }
    keep = ("model_config", "train_config", "epoch", "step", "metrics", "best_metric", DEPLOY_IMG_SIZE_KEY)
    payload = {key: data[key] for key in keep if key in data}
    payload["model"] = state
    payload["slim"] = {"source": Path(src).name, "float16": half}
    if deploy_img_size is not None:  # validated here: a multiple of the stride
        config = ModelConfig.from_dict(data["model_config"]).with_(img_size=deploy_img_size)
        payload[DEPLOY_IMG_SIZE_KEY] = config.img_size
    return save_checkpoint(dst, payload)
