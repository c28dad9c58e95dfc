"""What a training checkpoint holds, writing it, and resuming from it.

A checkpoint is self-describing (``model_config``) and exact to resume from: it stores the
weights, the optimizer, where the run stands (``RunState``) and the python/numpy/torch RNG
states. ``"model"`` is what evaluation and export read: the weight average when EMA is on;
``"train_model"`` holds the raw weights that resume continues from.
"""

from __future__ import annotations

import json
import logging
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from facedet.atomic import write_atomically
from facedet.config import ModelConfig
from facedet.ema import ModelEMA
from facedet.models.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from facedet.models.quant import QuantConv2d
from facedet.training.config import TrainConfig
from facedet.training.progressive import Ancillary

log = logging.getLogger(__name__)


@dataclass
class RunState:
    """Where a run stands.

    Attributes:
        epoch: completed epochs.
        iter_in_epoch: iterations done in the current epoch.
        step: optimizer steps in total.
        best_ap: best validation ``select_metric`` so far (-1 before the first validation).
        sums: loss-term sums of the current epoch so far (a resumed epoch carries them on, so its
            logged mean covers the whole epoch).
        iterations: iterations of the current epoch counted in ``sums``.
    """

    epoch: int = 0
    iter_in_epoch: int = 0
    step: int = 0
    best_ap: float = -1.0
    sums: dict[str, float] = field(default_factory=dict)
    iterations: int = 0


def rng_state() -> dict[str, Any]:
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])


class Checkpointer:
    """Writes ``OUT/last.pt`` and ``OUT/best.pt`` (on rank 0; a no-op elsewhere)."""

    def __init__(
        self,
        out: Path,
        cfg: TrainConfig,
        config: ModelConfig,
        model: torch.nn.Module,
        ema: ModelEMA | None,
        optimizer: torch.optim.Optimizer,
        enabled: bool,
        ancillary: Ancillary | None = None,
    ) -> None:
        self.out, self.cfg, self.config = out, cfg, config
        self.model, self.ema, self.optimizer = model, ema, optimizer
        self.enabled, self.ancillary = enabled, ancillary

    def save(self, names: tuple[str, ...], state: RunState, metrics: dict[str, float] | None = None) -> None:
        if not self.enabled:
            return
        payload = {
            "model_config": self.config.to_dict(),
            "model": (self.ema or self.model).state_dict(),
            **({"train_model": self.model.state_dict()} if self.ema is not None else {}),
            **({"ancillary": self.ancillary.state_dict()} if self.ancillary is not None else {}),
            "train_config": asdict(self.cfg),
            "optimizer": self.optimizer.state_dict(),
            "epoch": state.epoch,
            "iter_in_epoch": state.iter_in_epoch,
            "step": state.step,
            "best_ap": state.best_ap,
            "metrics": metrics or {},
            "epoch_sums": {"sums": dict(state.sums), "iterations": state.iterations},
            "rng": rng_state(),
        }
        for name in names:
            save_checkpoint(self.out / name, payload)


def resume_checkpoint(cfg: TrainConfig) -> dict[str, Any] | None:
    """OUT/last.pt when resuming and it exists, else None; a damaged one is a CheckpointError
    that says what to do (continue from an intact best.pt with --init)."""
    out = Path(cfg.out)
    if not (cfg.resume and (out / "last.pt").is_file()):
        return None
    try:
        return load_checkpoint(out / "last.pt")
    except CheckpointError as exc:
        hint = (
            f"; {out / 'best.pt'} may still be intact: continue with --init it" if (out / "best.pt").is_file() else ""
        )
        raise CheckpointError(f"cannot resume: {exc}{hint}") from exc


def rewind_log(path: Path, state: RunState) -> int:
    """Drop from a resumed run's ``log.jsonl`` what it will write again: step records after the
    checkpoint's step and epoch records it has not finished (a run stopped after its last checkpoint
    had logged them already), and a line cut short by the stop. Returns the lines dropped."""
    if not path.is_file():
        return 0
    lines = path.read_text().splitlines()
    kept = [line for line in lines if _logged_by(line, state)]
    if len(kept) < len(lines):
        write_atomically(path, lambda tmp: Path(tmp).write_text("".join(f"{line}\n" for line in kept)))
    return len(lines) - len(kept)


def _logged_by(line: str, state: RunState) -> bool:
    """Whether a log line records what the run had done by ``state``."""
    try:
        record = json.loads(line)
        if record.get("type") == "epoch":
            return int(record["epoch"]) <= state.epoch
        return int(record["step"]) <= state.step
    except (ValueError, TypeError, KeyError, AttributeError):  # cut short or not a record
        return False


def restore(
    checkpoint: dict[str, Any],
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    ema: ModelEMA | None,
    ancillary: Ancillary | None = None,
) -> RunState:
    """Load weights, optimizer, weight average, ancillary convolutions and RNG states; return where
    the run stood."""
    model.load_state_dict(checkpoint.get("train_model", checkpoint["model"]))
    if ancillary is not None:
        if "ancillary" not in checkpoint:
            raise CheckpointError("cannot resume with --progressive: the checkpoint has no ancillary convolutions")
        ancillary.load_state_dict(checkpoint["ancillary"])
    optimizer.load_state_dict(checkpoint["optimizer"])
    if ema is not None:
        ema.load_state_dict(checkpoint["model"])
        ema.updates = checkpoint["step"]
    carried = checkpoint.get("epoch_sums", {})
    state = RunState(
        epoch=checkpoint["epoch"],
        iter_in_epoch=checkpoint["iter_in_epoch"],
        step=checkpoint["step"],
        best_ap=checkpoint["best_ap"],
        sums=dict(carried.get("sums", {})),
        iterations=int(carried.get("iterations", 0)),
    )
    set_rng_state(checkpoint["rng"])
    return state


def retile_input_channels(source: torch.Tensor, shape: torch.Size) -> torch.Tensor | None:
    """A stored kernel (out, s, k, k) re-cut to (out, t, k, k) for another input-axis duplication
    factor, or None when the shapes differ otherwise.

    Input channel j of the full kernel reads stored channel ``j mod s`` (input-axis weight
    duplication; ``init_from`` re-cuts only such kernels). When t is a multiple of s
    the re-cut kernel repeats the source and computes exactly the same function (a smaller
    factor starts where the trained larger one ended); when s is a multiple of t each new channel
    is the mean of the source channels it merges (an approximation).
    """
    s, t = source.shape[1], shape[1]
    if source.dim() != 4 or source.shape[0] != shape[0] or source.shape[2:] != shape[2:] or s == t:
        return None
    if t % s == 0:
        return source.repeat(1, t // s, 1, 1)
    if s % t == 0:
        return source.view(source.shape[0], s // t, t, *source.shape[2:]).mean(dim=1)
    return None


def _weight_duplicated_on_input(model: torch.nn.Module, source_config: ModelConfig, name: str) -> bool:
    """Whether ``name`` is a block's kernel that, in the model and in the checkpoint alike, takes
    its input once (no duplicated input maps) and tiles any duplication along the input axis: the
    only case in which a re-cut kernel keeps its meaning."""
    parts = name.split(".")  # blocks.<i>.conv.weight
    if len(parts) != 4 or parts[0] != "blocks" or parts[2:] != ["conv", "weight"] or not parts[1].isdigit():
        return False
    target = model.get_submodule(f"blocks.{parts[1]}.conv")
    index = int(parts[1])
    return (
        isinstance(target, QuantConv2d)
        and target.dup_input == 1
        and target.dup_axis == "in"
        and index < len(source_config.layers)
        and source_config.layers[index].dup_input == 1
        and source_config.dup_axis == "in"
    )


def checkpoint_anchors(path: str) -> tuple[tuple[float, float], ...]:
    """The anchors (w, h pixels at the input) stored in a checkpoint's model config: the ``--init``
    checkpoint's (``--anchors init``: a fine-tune keeps the shapes its head was trained for) or the
    ``--teacher-model``'s (dense distillation compares the same slots)."""
    return ModelConfig.from_dict(load_checkpoint(path)["model_config"]).anchors


def init_from(model: torch.nn.Module, path: str) -> None:
    """Copy the tensors of a checkpoint's ``model`` whose names and shapes fit (``--init``); a
    kernel whose stored input channels differ by a duplication factor is re-cut to fit
    (``retile_input_channels``: a DupNet variant starts from the preset's trained weights)."""
    checkpoint = load_checkpoint(path)
    source = checkpoint["model"]
    own = model.state_dict()
    fits = {k: v for k, v in source.items() if k in own and own[k].shape == v.shape}
    retiled = {}
    source_config = ModelConfig.from_dict(checkpoint["model_config"])  # parsed once, not per kernel
    for name, value in source.items():
        if name in own and name not in fits and _weight_duplicated_on_input(model, source_config, name):
            recut = retile_input_channels(value, own[name].shape)
            if recut is not None:
                retiled[name] = recut
    model.load_state_dict({**fits, **retiled}, strict=False)
    log.info(
        "--init %s: %d of %d tensors loaded, %d re-cut to another duplication factor (%s)",
        path, len(fits) + len(retiled), len(own), len(retiled), ", ".join(retiled) or "none",
    )  # fmt: skip
