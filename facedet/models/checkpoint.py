"""Self-describing training checkpoints: the model config travels inside.

A checkpoint is a ``torch.save`` dict:
``{"format": "facedet-checkpoint", "format_version": 1, "model_config": dict, "model": state_dict,
"train_config": dict, "epoch": int, "optimizer": ..., "rng": ..., "metrics": dict, ...}``.
``load_model(path)`` rebuilds the network from the checkpoint alone (nanoGPT's sample.py).

Checkpoints are untrusted input: they are read with ``torch.load(weights_only=True)``, whose
unpickler builds only tensors and plain containers, so a crafted file cannot run code. The one
non-tensor object training needs back is the RNG state; ``save_checkpoint`` stores it as plain
lists/ints/tensors (``rng_state_to_plain``) and ``load_checkpoint`` gives back the native form
(``rng_state_from_plain``), so ``random.setstate``/``np.random.set_state`` take it as before.
Older checkpoints that pickled numpy's RNG key array still load: only numpy's array
reconstruction (no callable of any other kind) is allow-listed for them.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch

from facedet.atomic import write_atomically
from facedet.config import DEPLOY_IMG_SIZE_KEY, ModelConfig

FORMAT = "facedet-checkpoint"
FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint file that is missing, truncated, corrupt or not a facedet checkpoint."""


def rng_state_to_plain(state: dict[str, Any]) -> dict[str, Any]:
    """``{"python": random.getstate(), "numpy": np.random.get_state(), "torch": ByteTensor}`` as
    containers ``weights_only`` loading accepts: python -> [version, 625 ints, gauss or None];
    numpy -> {"algorithm", "key": int64 tensor (624,), "pos", "has_gauss", "cached_gaussian"}.
    Keys other than python/numpy pass through (tensors already load)."""
    plain = dict(state)
    if isinstance(state.get("python"), tuple):
        version, internal, gauss = state["python"]
        plain["python"] = [int(version), [int(v) for v in internal], None if gauss is None else float(gauss)]
    numpy_state = state.get("numpy")
    if isinstance(numpy_state, tuple):
        algorithm, key, pos, has_gauss, cached = numpy_state
        plain["numpy"] = {
            "algorithm": str(algorithm),
            "key": torch.from_numpy(np.asarray(key, np.int64).copy()),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        }
    return plain


def rng_state_from_plain(plain: dict[str, Any]) -> dict[str, Any]:
    """Inverse of ``rng_state_to_plain``: the tuples ``random.setstate`` and ``np.random.set_state``
    take. A state already in native form (an older checkpoint) comes back unchanged."""
    state = dict(plain)
    python_state = plain.get("python")
    if isinstance(python_state, list):
        version, internal, gauss = python_state
        state["python"] = (int(version), tuple(int(v) for v in internal), gauss)
    numpy_state = plain.get("numpy")
    if isinstance(numpy_state, dict):
        key = np.asarray(numpy_state["key"].numpy() if torch.is_tensor(numpy_state["key"]) else numpy_state["key"])
        state["numpy"] = (
            numpy_state["algorithm"],
            key.astype(np.uint32),
            int(numpy_state["pos"]),
            int(numpy_state["has_gauss"]),
            float(numpy_state["cached_gaussian"]),
        )
    return state


def _legacy_numpy_globals() -> list[Any]:
    # What np.random.get_state()'s uint32 key array needs to unpickle, and nothing else:
    # the array reconstructor, the array and dtype classes, the uint32 dtype class.
    return [np._core.multiarray._reconstruct, np.ndarray, np.dtype, type(np.dtype(np.uint32))]


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> Path:
    """Write ``payload`` (must hold ``model_config`` and ``model``) atomically: temp file + rename."""
    data = {"format": FORMAT, "format_version": FORMAT_VERSION, **payload}
    if "model_config" not in data or "model" not in data:
        raise ValueError("a checkpoint needs 'model_config' and 'model'")
    if isinstance(data.get("rng"), dict):
        data["rng"] = rng_state_to_plain(data["rng"])
    return write_atomically(path, lambda tmp: torch.save(data, tmp))


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint safely (``weights_only``: no code runs), with a clear error for a missing,
    truncated, foreign or code-carrying file. An ``rng`` entry comes back in native form."""
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"{path}: is a directory, not a checkpoint file")
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        with torch.serialization.safe_globals(_legacy_numpy_globals()):
            data = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # weights_only refused an object: a crafted file (or one that is not a plain checkpoint).
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"{path}: refused: the checkpoint holds objects other than tensors and plain data "
            f"(untrusted pickle code is never run): {first}"
        ) from exc
    except Exception as exc:  # torch raises several types for truncated/corrupt zip archives
        raise CheckpointError(f"{path}: not a readable checkpoint (truncated or corrupt?): {exc}") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a facedet checkpoint (no format={FORMAT!r} entry)")
    if int(data.get("format_version", 0)) > FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format {data['format_version']} is newer than this facedet reads ({FORMAT_VERSION})"
        )
    if not isinstance(data.get("model_config"), dict) or not isinstance(data.get("model"), dict):
        missing = [key for key in ("model_config", "model") if not isinstance(data.get(key), dict)]
        raise CheckpointError(f"{path}: facedet checkpoint without {' or '.join(repr(k) for k in missing)} entry")
    if isinstance(data.get("rng"), dict):
        data["rng"] = rng_state_from_plain(data["rng"])
    return data


def load_model(path: str | Path) -> tuple[torch.nn.Module, ModelConfig, dict[str, Any]]:
    """(model in eval mode, its config, the raw checkpoint dict) rebuilt from the file alone."""
    from facedet.models import build_model

    data = load_checkpoint(path)
    try:
        config = ModelConfig.from_dict(data["model_config"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: invalid model_config in the checkpoint: {exc!r}") from exc
    model = build_model(config)
    try:
        model.load_state_dict(data["model"])
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: weights do not fit the stored model config: {exc}") from exc
    model.eval()
    return model, config, data


def slim_checkpoint(
    src: str | Path, dst: str | Path, half: bool = False, deploy_img_size: int | None = None, raw: bool = False
) -> Path:
    """Write a shippable copy of a checkpoint: model, config, metrics and the training record,
    without optimizer or RNG state; ``half`` stores float weights as float16 (they load back
    into the float32 model, which is how Tiny-YOLO's 63 MB fit the repository at half size);
    ``deploy_img_size`` stores the input size that export and detect then use by default;
    ``raw`` takes the trained weights instead of their moving average (to measure what the
    average is worth)."""
    data = load_checkpoint(src)
    if raw and "train_model" not in data:
        raise CheckpointError(f"{src}: no raw weights (train_model): it was trained without an EMA or slimmed")
    weights = data["train_model"] if raw else data["model"]
    state = {
        name: (tensor.half() if half and tensor.is_floating_point() else tensor) for name, tensor in weights.items()
    }
    keep = ("model_config", "train_config", "epoch", "step", "metrics", "best_metric", DEPLOY_IMG_SIZE_KEY)
    payload = {key: data[key] for key in keep if key in data}
    payload["model"] = state
    payload["slim"] = {"source": Path(src).name, "float16": half, "weights": "raw" if raw else "model"}
    if deploy_img_size is not None:  # validated here: a multiple of the stride
        config = ModelConfig.from_dict(data["model_config"]).with_(img_size=deploy_img_size)
        payload[DEPLOY_IMG_SIZE_KEY] = config.img_size
    return save_checkpoint(dst, payload)
