"""One training epoch and one validation pass (torchvision's ``references/detection/engine.py`` split).

``train_one_epoch`` runs the optimizer steps of an epoch from wherever the run stands (a resumed
run starts mid-epoch), logging and checkpointing as it goes; ``evaluate`` scores a model on a
data set with the same numpy decode and COCO AP50 as ``facedet eval wider``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from facedet.anchors import PostProcess, decode
from facedet.boxes import letterbox
from facedet.config import ModelConfig
from facedet.data.dataset import FaceDataset, collate
from facedet.detections import Detections
from facedet.ema import ModelEMA
from facedet.evaluation.wider_ap import wider_ap
from facedet.loss import RegionLossConfig, region_loss
from facedet.training.checkpointing import Checkpointer, RunState
from facedet.training.config import TrainConfig
from facedet.training.dense_distill import Teacher, dense_distill_loss
from facedet.training.distributed import Dist
from facedet.training.progressive import Ancillary
from facedet.training.schedule import epoch_batches, lr_at


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or infinite; the message lists the offending terms."""


@dataclass
class Trainee:
    """The model being trained and what updates it.

    Attributes:
        model: the raw weights (what the optimizer updates and gradients are clipped on).
        forward: the module a step calls: ``model``, compiled, or DDP-wrapped.
        optimizer: AdamW over ``model``'s parameters.
        ema: the weight average, or None.
        config: the model config (anchors, stride).
        anchors: (A, 2) float32 anchor sizes, pixels at the input, on the training device.
        loss: region-loss options.
        channels_last: batches go in NHWC (the model was converted to match).
        bf16: the forward runs under bfloat16 autocast.
        ancillary: full-precision convolutions beside the quantized ones (progressive training), or None.
        fade_steps: steps over which the ancillary weight falls from 1 to 0.
        teacher: the detector whose head maps the student learns slot by slot (dense
            distillation), or None.
        teacher_weight: weight of the distillation terms in the total loss.
    """

    model: torch.nn.Module
    forward: torch.nn.Module
    optimizer: torch.optim.Optimizer
    ema: ModelEMA | None
    config: ModelConfig
    anchors: torch.Tensor
    loss: RegionLossConfig
    channels_last: bool = False
    bf16: bool = False
    ancillary: Ancillary | None = None
    fade_steps: int = 0
    teacher: Teacher | None = None
    teacher_weight: float = 1.0

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        """A (B, 3, S, S) 0..255 batch in the model's memory layout, float32."""
        images = images.float()
        return images.contiguous(memory_format=torch.channels_last) if self.channels_last else images

    @property
    def eval_model(self) -> torch.nn.Module:
        """What validation scores (and checkpoints call ``model``): the average when there is one."""
        return self.ema.module if self.ema is not None else self.model


def _train_step(
    trainee: Trainee,
    images: torch.Tensor,
    targets: dict[str, torch.Tensor],
    ctx: Dist,
    state: RunState,
    lr: float,
    grad_clip: float,
) -> dict[str, float]:
    """One optimizer step at learning rate ``lr`` on a batch (then the weight average's update);
    returns the loss terms.

    Raises:
        NonFiniteLossError: a term is NaN/inf on any rank (checked before any weight changes).
    """
    for group in trainee.optimizer.param_groups:
        group["lr"] = lr
    if trainee.ancillary is not None:
        trainee.ancillary.set_progress(state.step, trainee.fade_steps)
    with torch.autocast(images.device.type, dtype=torch.bfloat16, enabled=trainee.bf16):
        raw = trainee.forward(images).float()  # (B, A*5, S/32, S/32); the losses run in float32
    terms = region_loss(raw, targets, trainee.anchors, trainee.config.stride, trainee.loss)
    if trainee.teacher is not None:
        distill = dense_distill_loss(raw, trainee.teacher(images), trainee.anchors.shape[0])
        terms.update(distill)
        terms["total"] = terms["total"] + trainee.teacher_weight * (distill["kd_obj"] + distill["kd_box"])
    finite = {k: float(v.detach()) for k, v in terms.items()}
    if not ctx.all_true(all(math.isfinite(v) for v in finite.values())):
        bad = {k: v for k, v in finite.items() if not math.isfinite(v)}
        raise NonFiniteLossError(
            f"non-finite loss at epoch {state.epoch + 1}, iteration {state.iter_in_epoch + 1} (step {state.step}): "
            f"offending terms {bad or '(on another rank)'}; all terms {finite}"
        )
    trainee.optimizer.zero_grad(set_to_none=True)
    terms["total"].backward()
    if grad_clip > 0:
        params = list(trainee.model.parameters())
        if trainee.ancillary is not None:
            params += list(trainee.ancillary.parameters())
        torch.nn.utils.clip_grad_norm_(params, grad_clip)
    trainee.optimizer.step()
    if trainee.ema is not None:
        trainee.ema.update(trainee.model)
    if trainee.ancillary is not None:
        finite["ancillary_weight"] = trainee.ancillary.weight
    return finite


def train_one_epoch(
    trainee: Trainee,
    train_set: FaceDataset,
    cfg: TrainConfig,
    ctx: Dist,
    state: RunState,
    total_steps: int,
    checkpointer: Checkpointer,
    write_log: Callable[[dict[str, Any]], None],
) -> bool:
    """Run the rest of epoch ``state.epoch`` from ``state.iter_in_epoch``, updating ``state``.

    Writes a ``step`` record every ``cfg.log_every`` steps and ``last.pt`` every
    ``cfg.checkpoint_every`` steps. Returns True when ``cfg.max_steps`` stopped the run.
    """
    batches = epoch_batches(len(train_set), cfg, state.epoch, ctx.rank, ctx.world)
    # The loader's own generator, seeded by (seed, epoch): building a loader iterator draws a worker
    # base seed, and from torch's global RNG that draw would make a run resumed mid-epoch (one more
    # loader) differ from an uninterrupted one.
    generator = torch.Generator().manual_seed(cfg.seed * 100_003 + state.epoch)
    loader = DataLoader(
        train_set,
        batch_sampler=batches[state.iter_in_epoch :],
        collate_fn=collate,
        num_workers=cfg.workers,
        generator=generator,
    )
    trainee.forward.train()
    if state.iter_in_epoch == 0:  # a fresh epoch; a resumed one carries the checkpoint's sums on
        state.sums, state.iterations = {}, 0
    progress = None
    if ctx.main and cfg.progress:
        from tqdm import tqdm

        progress = tqdm(total=len(batches), initial=state.iter_in_epoch, desc=f"epoch {state.epoch + 1}/{cfg.epochs}")
    tick, seen, stopped = time.perf_counter(), 0, False
    for images, targets in loader:
        lr = lr_at(state.step, cfg, total_steps)
        images = trainee.prepare(images.to(ctx.device, non_blocking=True))  # (B, 3, S, S) 0..255
        targets = {k: v.to(ctx.device) for k, v in targets.items()}
        finite = _train_step(trainee, images, targets, ctx, state, lr, cfg.grad_clip)
        state.step += 1
        state.iter_in_epoch += 1
        state.iterations += 1
        seen += images.shape[0] * ctx.world
        for k, v in finite.items():
            state.sums[k] = state.sums.get(k, 0.0) + v
        rate = seen / max(time.perf_counter() - tick, 1e-9)
        if progress is not None:
            progress.update(1)
            progress.set_postfix(
                box=f"{finite['box']:.3f}", obj=f"{finite['obj']:.3f}", noobj=f"{finite['noobj']:.3f}",
                lr=f"{lr:.1e}", img_s=f"{rate:.1f}",
            )  # fmt: skip
        if state.step % cfg.log_every == 0:
            write_log({"type": "step", "epoch": state.epoch, "iter": state.iter_in_epoch, "step": state.step,
                       "lr": lr, **finite, "img_per_s": rate})  # fmt: skip
        stopped = cfg.max_steps is not None and state.step >= cfg.max_steps
        if cfg.checkpoint_every and state.step % cfg.checkpoint_every == 0 or stopped:
            checkpointer.save(("last.pt",), state)
        if stopped:
            break
    if progress is not None:
        progress.close()
    return stopped


@torch.no_grad()
def evaluate(
    model: torch.nn.Module, config: ModelConfig, dataset: FaceDataset, device: torch.device, batch_size: int = 16
) -> dict[str, float]:
    """AP50 on a dataset's images (letterboxed as at inference, decoded by ``facedet.anchors.decode``).

    Returns ``{"ap50": AP on all valid faces, "ap50_ge16" / "ap50_ge48": AP with faces under 16 /
    48 px ignored}`` (pixels of the cached images).
    """
    model.eval()
    post = PostProcess(score_threshold=0.01, nms_iou=0.4, max_detections=300)
    detections: list[Detections] = []
    ground_truth: list[tuple[np.ndarray, np.ndarray]] = []
    for start in range(0, len(dataset), batch_size):
        indices = range(start, min(start + batch_size, len(dataset)))
        boxed = [letterbox(np.asarray(dataset.cache.get(i)), config.img_size, config.letterbox_value) for i in indices]
        x = torch.from_numpy(np.stack([b.transpose(2, 0, 1) for b, _ in boxed])).float().to(device)
        raw = model(x).float().cpu().numpy()  # (B, A*5, S/stride, S/stride)
        for i, (_, box), r in zip(indices, boxed, raw, strict=True):
            detections.append(decode(r, config.anchors, config.stride, box, post))
            ground_truth.append(dataset.boxes_in_cache_frame(i))
    # The same COCO AP50 as `facedet eval wider` (facedet.evaluation.wider_ap).
    return {
        "ap50": wider_ap(ground_truth, detections)["AP50"],
        "ap50_ge16": wider_ap(ground_truth, detections, min_size=16.0)["AP50"],
        "ap50_ge48": wider_ap(ground_truth, detections, min_size=48.0)["AP50"],
    }
