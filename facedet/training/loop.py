"""Training recipe: WIDER Face -> a self-describing detector checkpoint (nanoGPT's train.py shape).

``train(cfg)`` wires data (parser -> decoded-image cache -> albumentations -> batches,
``facedet.training.data``), the model (a preset with k-means anchors), the YOLOv2 region loss,
AdamW with warmup + cosine (``facedet.training.schedule``), an epoch at a time
(``facedet.training.engine``), per-epoch validation (AP50 through the shared numpy decode) and
atomic checkpoints (``facedet.training.checkpointing``).

Resume is exact: the sample order of an epoch is a pure function of (seed, epoch), every sample's
augmentation is seeded by (seed, epoch, position), and the checkpoint stores the model, the
optimizer, the epoch, the iteration within the epoch, the python/numpy/torch RNG states and the
best metric. Under ``torchrun`` (``WORLD_SIZE`` > 1) each rank takes a shard of every epoch's
order, gradients are averaged by DDP and only rank 0 validates and writes.
"""

from __future__ import annotations

import json
import logging
import os
import random
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from facedet.config import ModelConfig
from facedet.data.dataset import FaceDataset
from facedet.ema import ModelEMA
from facedet.loss import RegionLossConfig
from facedet.models import build_model, model_config
from facedet.models.precision import set_precision
from facedet.training.checkpointing import (
    Checkpointer,
    RunState,
    init_from,
    restore,
    resume_checkpoint,
    rewind_log,
)
from facedet.training.config import TrainConfig
from facedet.training.data import build_datasets, fit_anchors
from facedet.training.dense_distill import Teacher
from facedet.training.distributed import Dist
from facedet.training.engine import Trainee, evaluate, train_one_epoch
from facedet.training.progressive import Ancillary, fade_steps
from facedet.training.schedule import epoch_batches

log = logging.getLogger(__name__)


def _param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    # AdamW decays conv/linear weights only, not BN parameters or biases.
    decay = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.dim() < 2]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _build_trainee(cfg: TrainConfig, ctx: Dist, train_set: FaceDataset, total_steps: int) -> tuple[Trainee, RunState]:
    """The model (new, --init, or resumed from OUT/last.pt), its optimizer and average, and where
    the run stands."""
    checkpoint = resume_checkpoint(cfg)
    if checkpoint is not None:
        config = ModelConfig.from_dict(checkpoint["model_config"])
    else:
        config = model_config(cfg.model, img_size=cfg.deploy_size or cfg.img_size)
        config = config.with_(anchors=fit_anchors(cfg, train_set, config.anchors))
    model = build_model(config).to(ctx.device)
    if cfg.init and checkpoint is None:
        init_from(model, cfg.init)
    if cfg.precision != "full":
        if not config.quantized:
            raise ValueError(f"--precision {cfg.precision} needs a quantized model; {config.name} is float")
        set_precision(model, cfg.precision)  # before the EMA copy, which inherits the stage
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)  # in place: parameters keep their identity
    ancillary = None
    if cfg.progressive > 0:
        if ctx.world > 1:
            raise ValueError(
                "--progressive is not supported under torchrun (the ancillary convolutions are not synced)"
            )
        ancillary = Ancillary(model).to(ctx.device)
    trained = torch.nn.ModuleList([model] + ([ancillary] if ancillary is not None else []))
    optimizer = torch.optim.AdamW(_param_groups(trained, cfg.weight_decay), lr=cfg.lr, betas=(0.9, 0.999))
    ema = ModelEMA(model, cfg.ema_decay) if cfg.ema_decay > 0 else None
    state = RunState()
    if checkpoint is not None:
        state = restore(checkpoint, model, optimizer, ema, ancillary)
        if ctx.main:
            log.info(
                "resumed %s at epoch %d, iteration %d (step %d)",
                Path(cfg.out) / "last.pt", state.epoch, state.iter_in_epoch, state.step,
            )  # fmt: skip
    teacher = Teacher(cfg.teacher_model, config, ctx.device) if cfg.teacher_model else None
    trainee = Trainee(
        model=model,
        forward=ctx.wrap(model, cfg.compile),
        optimizer=optimizer,
        ema=ema,
        config=config,
        anchors=torch.tensor(config.anchors, dtype=torch.float32, device=ctx.device),
        loss=RegionLossConfig(rescore=cfg.rescore, multi_anchor_iou=cfg.multi_anchor_iou),
        channels_last=cfg.channels_last,
        bf16=cfg.bf16,
        ancillary=ancillary,
        fade_steps=fade_steps(cfg.progressive, total_steps),
        teacher=teacher,
        teacher_weight=cfg.teacher_weight,
    )
    return trainee, state


def _finish_epoch(
    cfg: TrainConfig,
    ctx: Dist,
    trainee: Trainee,
    val_set: FaceDataset | None,
    state: RunState,
    checkpointer: Checkpointer,
    write_log: Callable[[dict[str, Any]], None],
) -> None:
    """End of an epoch: validate (rank 0), log the epoch, write last.pt (and best.pt when better)."""
    state.epoch += 1
    state.iter_in_epoch = 0
    means = {f"train_{k}": v / max(state.iterations, 1) for k, v in state.sums.items()}
    record: dict[str, Any] = {"type": "epoch", "epoch": state.epoch, "step": state.step, **means}
    names: tuple[str, ...] = ("last.pt",)
    if ctx.main and val_set is not None and len(val_set):
        metrics = evaluate(trainee.eval_model, trainee.config, val_set, ctx.device)
        record.update({f"val_{k}": v for k, v in metrics.items()})
        if metrics[cfg.select_metric] > state.best_ap:
            state.best_ap = metrics[cfg.select_metric]
            names = ("last.pt", "best.pt")
        log.info("epoch %d: val %s", state.epoch, " ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
        log.info("epoch %d: best %s %.4f", state.epoch, cfg.select_metric, state.best_ap)
    record["best_" + cfg.select_metric] = state.best_ap
    record["time"] = time.time()
    write_log(record)
    checkpointer.save(names, state, {k[4:]: v for k, v in record.items() if k.startswith("val_")})
    ctx.barrier()


def train(cfg: TrainConfig) -> dict[str, Any]:
    """Run (or resume) a training job; returns the final state summary (rank 0's view).

    Raises:
        NonFiniteLossError: a loss term became NaN/inf (training stops, last checkpoint kept).
    """
    ctx = Dist(cfg.device)
    torch.set_num_threads(cfg.threads or max(1, (os.cpu_count() or 1) // ctx.world))
    out = Path(cfg.out)
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)

    train_set, val_set = build_datasets(cfg, ctx)
    iters_per_epoch = len(epoch_batches(len(train_set), cfg, 0, ctx.rank, ctx.world))
    if iters_per_epoch == 0:
        raise ValueError(f"{len(train_set)} training images are fewer than one batch of {cfg.batch_size}")
    total_steps = cfg.epochs * iters_per_epoch
    trainee, state = _build_trainee(cfg, ctx, train_set, total_steps)

    if ctx.main:
        out.mkdir(parents=True, exist_ok=True)
        (out / "model_config.json").write_text(json.dumps(trainee.config.to_dict(), indent=2) + "\n")
        (out / "train_config.json").write_text(json.dumps(asdict(cfg), indent=2) + "\n")
    checkpointer = Checkpointer(
        out, cfg, trainee.config, trainee.model, trainee.ema, trainee.optimizer, ctx.main, trainee.ancillary
    )
    if ctx.main and state.step:
        dropped = rewind_log(out / "log.jsonl", state)
        if dropped:
            log.info("log.jsonl: dropped %d records written after the checkpoint resumed from", dropped)
    log_file = open(out / "log.jsonl", "a") if ctx.main else None  # noqa: SIM115 (closed in finally)

    def write_log(record: dict[str, Any]) -> None:
        if log_file is not None:
            log_file.write(json.dumps(record) + "\n")
            log_file.flush()

    try:
        stopped = False
        while state.epoch < cfg.epochs and not stopped:
            stopped = train_one_epoch(trainee, train_set, cfg, ctx, state, total_steps, checkpointer, write_log)
            if stopped and state.iter_in_epoch < iters_per_epoch:
                break
            _finish_epoch(cfg, ctx, trainee, val_set, state, checkpointer, write_log)
    finally:
        if log_file is not None:
            log_file.close()
    return {
        "epoch": state.epoch,
        "iter_in_epoch": state.iter_in_epoch,
        "step": state.step,
        "best": state.best_ap,
        "out": str(out),
    }
