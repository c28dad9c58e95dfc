"""Training recipe: WIDER Face -> a self-describing detector checkpoint (nanoGPT's train.py shape).

``train(cfg)`` wires data (parser -> decoded-image cache -> albumentations -> batches), the model
(a preset with k-means anchors), the YOLOv2 region loss, AdamW with warmup + cosine (``lr_at``),
per-epoch validation (AP50 through the shared numpy decode) and atomic checkpoints.

Resume is exact: the sample order of an epoch is a pure function of (seed, epoch), every sample's
augmentation is seeded by (seed, epoch, position), and the checkpoint stores the model, the
optimizer, the epoch, the iteration within the epoch, the python/numpy/torch RNG states and the
best metric. Under ``torchrun`` (``WORLD_SIZE`` > 1) each rank takes a shard of every epoch's
order, gradients are averaged by DDP and only rank 0 validates and writes.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader

from facedet.anchors import PostProcess, decode, kmeans_anchors
from facedet.boxes import letterbox
from facedet.config import ModelConfig
from facedet.data.cache import ImageCache, default_cache_dir
from facedet.data.dataset import FaceDataset, collate
from facedet.data.transforms import build_transforms
from facedet.data.wider import WiderSample, load_wider
from facedet.detections import Detections
from facedet.ema import ModelEMA
from facedet.evaluation.wider_ap import wider_ap
from facedet.loss import RegionLossConfig, region_loss
from facedet.models import build_model, model_config
from facedet.models.checkpoint import CheckpointError, load_checkpoint, save_checkpoint

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainConfig:
    """Everything about *how* a model is trained (the model itself is a ``ModelConfig``)."""

    model: str = "ifq-tinier-yolo"
    data_root: str = "data"
    out: str = "runs/train"
    img_size: int = 320
    epochs: int = 30
    batch_size: int = 32
    lr: float = 1e-3
    min_lr_ratio: float = 0.1  # cosine decays to lr * min_lr_ratio (nanoGPT: lr / 10)
    warmup_steps: int = 200
    weight_decay: float = 0.01  # AdamW, conv/linear weights only (not BN or biases)
    grad_clip: float = 10.0
    seed: int = 0
    workers: int = 1
    threads: int = 0  # torch intra-op threads; 0 = cores / processes
    device: str = "auto"
    anchors: str = "auto"  # "auto" = k-means on the training boxes, "preset" = the preset's
    num_anchors: int = 5
    min_face: float = 4.0  # faces below this (pixels at the input) are ignore regions
    max_images: int | None = None
    max_val_images: int | None = None
    max_steps: int | None = None  # stop after this many optimizer steps in total (tests, benchmarks)
    cache_dir: str | None = None
    checkpoint_every: int = 200
    log_every: int = 10
    resume: bool = False
    init: str | None = None
    rescore: bool = False
    progress: bool = True
    # ---- the scale-aware recipe (issue: train for the face sizes the deployed input sees)
    sampling: str = "scale"  # "scale": face-centred crops (facedet.data.scale_sampling); "letterbox": whole images
    face_min: float = 16.0  # drawn face heights, network pixels (log-uniform)
    face_max: float = 320.0
    deploy_size: int | None = 416  # the model config's input size (validation, export); None = img_size
    multi_anchor_iou: float | None = 0.35  # extra positive anchors (RegionLossConfig.multi_anchor_iou)
    ema_decay: float = 0.9998  # 0 = no weight averaging
    select_metric: str = "ap50_ge48"  # validation metric that picks best.pt
    compile: bool = False  # torch.compile the model's forward

    def __post_init__(self) -> None:
        if self.sampling not in ("scale", "letterbox"):
            raise ValueError(f"sampling must be 'scale' or 'letterbox', got {self.sampling!r}")
        if self.select_metric not in VAL_METRICS:
            raise ValueError(f"select_metric must be one of {VAL_METRICS}, got {self.select_metric!r}")
        for name in ("img_size", "deploy_size"):
            value = getattr(self, name)
            if value is not None and (value <= 0 or value % 32):
                raise ValueError(f"{name} must be a positive multiple of 32, got {value}")
        if not 0 < self.face_min <= self.face_max:
            raise ValueError(f"need 0 < face_min <= face_max, got {self.face_min}, {self.face_max}")
        if self.batch_size < 1 or self.epochs < 1:
            raise ValueError("batch_size and epochs must be at least 1")


VAL_METRICS = ("ap50", "ap50_ge16", "ap50_ge48")


def lr_at(step: int, cfg: TrainConfig, total_steps: int) -> float:
    """Learning rate at optimizer step ``step`` (0-based): linear warmup, then cosine to a floor."""
    min_lr = cfg.lr * cfg.min_lr_ratio
    warmup = min(cfg.warmup_steps, max(total_steps // 10, 1))
    # 1) linear warmup
    if step < warmup:
        return cfg.lr * (step + 1) / warmup
    # 2) after the schedule, stay at the floor
    if step >= total_steps:
        return min_lr
    # 3) cosine decay from lr to min_lr between warmup and total_steps
    ratio = (step - warmup) / max(total_steps - warmup, 1)
    assert 0.0 <= ratio <= 1.0
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (cfg.lr - min_lr)


def epoch_order(n: int, seed: int, epoch: int, rank: int = 0, world: int = 1) -> list[tuple[int, int]]:
    """This rank's (sample index, augmentation seed) list for an epoch; a pure function of its args.

    The permutation is padded (wrapping) to a multiple of ``world`` and dealt round-robin, as
    ``DistributedSampler`` does.
    """
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(n)
    pad = (-n) % world
    order = np.concatenate([order, order[:pad]])
    seeds = np.random.default_rng([seed, epoch, 1]).integers(0, 2**31 - 1, size=len(order))
    return [(int(i), int(s)) for i, s in zip(order[rank::world], seeds[rank::world], strict=True)]


def _subset(samples: list[WiderSample], limit: int | None, seed: int) -> list[WiderSample]:
    # A seeded spread over the whole list (WIDER files are grouped by event: the first N
    # images would all be parades).
    if limit is None or limit >= len(samples):
        return samples
    keep = np.sort(np.random.default_rng(seed).permutation(len(samples))[:limit])
    return [samples[i] for i in keep]


def anchors_from_data(dataset: FaceDataset, img_size: int, k: int, seed: int) -> tuple[tuple[float, float], ...]:
    """k-means (1 - IoU) anchors of the trainable boxes letterboxed to ``img_size``."""
    wh_all = []
    for i in range(len(dataset)):
        boxes, invalid = dataset.boxes_in_cache_frame(i)
        scale = img_size / max(dataset.cache.shape(i))
        wh = (boxes[:, 2:] - boxes[:, :2]) * scale
        wh_all.append(wh[~invalid & (wh.min(1) >= dataset.min_face)])
    anchors = kmeans_anchors(np.concatenate(wh_all), k, seed=seed)
    return tuple((round(float(w), 2), round(float(h), 2)) for w, h in anchors)


def anchors_from_samples(dataset: FaceDataset, k: int, seed: int, draws: int = 3000) -> tuple[tuple[float, float], ...]:
    """k-means (1 - IoU) anchors of the trainable boxes as the training transform produces them
    (the scale-aware sampler's face-size distribution), from ``draws`` seeded samples."""
    rng = np.random.default_rng([seed, 7])
    wh_all = []
    for index in rng.integers(0, len(dataset), size=draws):
        _, target = dataset[(int(index), int(rng.integers(0, 2**31 - 1)))]
        boxes, ignore = target["boxes"].numpy(), target["ignore"].numpy()
        wh_all.append((boxes[:, 2:] - boxes[:, :2])[~ignore])
    anchors = kmeans_anchors(np.concatenate(wh_all), k, seed=seed)
    return tuple((round(float(w), 2), round(float(h), 2)) for w, h in anchors)


class _Dist:
    """Rank, world size and device; initialises the process group under torchrun."""

    def __init__(self, device: str) -> None:
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        use_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
        self.device = torch.device(f"cuda:{local_rank}" if use_cuda else "cpu")
        if use_cuda:
            torch.cuda.set_device(self.device)
        if self.world > 1 and not dist.is_initialized():
            dist.init_process_group("nccl" if use_cuda else "gloo")

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()

    def all_true(self, flag: bool) -> bool:
        if self.world == 1:
            return flag
        t = torch.tensor([0.0 if flag else 1.0], device=self.device)
        dist.all_reduce(t)
        return float(t) == 0.0


def _rng_state() -> dict[str, Any]:
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}


def _set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])


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


def _load_split(
    cfg: TrainConfig, split: str, limit: int | None, ctx: _Dist, collective: bool = True
) -> tuple[list[WiderSample], ImageCache]:
    """Parse a split and open its decoded-image cache (rank 0 builds it; with ``collective`` every
    rank must call this, the others waiting at a barrier)."""
    samples, _ = load_wider(cfg.data_root, split)
    samples = _subset(samples, limit, cfg.seed)
    if split == "train" and len(samples) < cfg.batch_size * ctx.world:  # checked before the slow cache build
        raise ValueError(
            f"{len(samples)} training images are fewer than one batch of {cfg.batch_size}"
            + (f" x {ctx.world} processes" if ctx.world > 1 else "")
            + f"; use --batch-size {max(1, len(samples) // ctx.world)} or more images"
        )
    cache_dir = Path(cfg.cache_dir) if cfg.cache_dir else default_cache_dir(cfg.data_root)
    name = f"wider-{split}" + (f"-n{limit}" if limit is not None else "")  # subsets never evict the full cache
    paths = [s.path for s in samples]
    # Enough resolution for the 2x zoom-in of the train policy; 640 at least, so that runs at
    # different sizes up to 320 share one cache.
    max_side = max(640, 2 * cfg.img_size)
    if not collective:
        return samples, ImageCache.build(paths, cache_dir, name, max_side=max_side)
    if ctx.main:  # rank 0 decodes; the others wait, then open the finished cache
        cache = ImageCache.build(paths, cache_dir, name, max_side=max_side)
    ctx.barrier()
    if not ctx.main:
        cache = ImageCache.build(paths, cache_dir, name, max_side=max_side)
    return samples, cache


def _param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    decay = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.dim() < 2]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _load_resume_state(out: Path) -> dict[str, Any]:
    """OUT/last.pt, or a CheckpointError that says what to do when it is damaged."""
    try:
        return load_checkpoint(out / "last.pt")
    except CheckpointError as exc:
        hint = (
            f"; {out / 'best.pt'} may still be intact: continue with --init it" if (out / "best.pt").is_file() else ""
        )
        raise CheckpointError(f"cannot resume: {exc}{hint}") from exc


def _init_from(model: torch.nn.Module, path: str) -> None:
    source = load_checkpoint(path)["model"]
    own = model.state_dict()
    fits = {k: v for k, v in source.items() if k in own and own[k].shape == v.shape}
    model.load_state_dict(fits, strict=False)
    log.info("--init %s: %d of %d tensors loaded", path, len(fits), len(own))


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or infinite; the message lists the offending terms."""


def train(cfg: TrainConfig) -> dict[str, Any]:
    """Run (or resume) a training job; returns the final state summary (rank 0's view).

    Raises:
        NonFiniteLossError: a loss term became NaN/inf (training stops, last checkpoint kept).
    """
    ctx = _Dist(cfg.device)
    torch.set_num_threads(cfg.threads or max(1, (os.cpu_count() or 1) // ctx.world))
    out = Path(cfg.out)
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)

    train_samples, train_cache = _load_split(cfg, "train", cfg.max_images, ctx)
    val_samples, val_cache = _load_split(cfg, "val", cfg.max_val_images, ctx, False) if ctx.main else ([], None)
    policy = "scale" if cfg.sampling == "scale" else "train"
    transform = build_transforms(policy, cfg.img_size, cfg.face_min, cfg.face_max)
    train_set = FaceDataset(train_samples, train_cache, transform, cfg.min_face)
    val_set = None
    if val_cache is not None:
        val_set = FaceDataset(val_samples, val_cache, build_transforms("eval", cfg.img_size), cfg.min_face)

    resume_state = None
    if cfg.resume and (out / "last.pt").is_file():
        resume_state = _load_resume_state(out)
        mcfg = ModelConfig.from_dict(resume_state["model_config"])
    else:
        mcfg = model_config(cfg.model, img_size=cfg.deploy_size or cfg.img_size)
        if cfg.anchors == "auto" and cfg.sampling == "scale":
            mcfg = mcfg.with_(anchors=anchors_from_samples(train_set, cfg.num_anchors, cfg.seed))
        elif cfg.anchors == "auto":
            mcfg = mcfg.with_(anchors=anchors_from_data(train_set, cfg.img_size, cfg.num_anchors, cfg.seed))
        elif cfg.anchors != "preset":
            raise ValueError(f"--anchors must be auto or preset, got {cfg.anchors!r}")
    model = build_model(mcfg).to(ctx.device)
    if cfg.init and resume_state is None:
        _init_from(model, cfg.init)
    optimizer = torch.optim.AdamW(_param_groups(model, cfg.weight_decay), lr=cfg.lr, betas=(0.9, 0.999))
    ema = ModelEMA(model, cfg.ema_decay) if cfg.ema_decay > 0 else None

    epoch, iter_in_epoch, step, best_ap = 0, 0, 0, -1.0
    if resume_state is not None:
        model.load_state_dict(resume_state.get("train_model", resume_state["model"]))
        optimizer.load_state_dict(resume_state["optimizer"])
        if ema is not None:
            ema.load_state_dict(resume_state["model"])
            ema.updates = resume_state["step"]
        epoch, iter_in_epoch = resume_state["epoch"], resume_state["iter_in_epoch"]
        step, best_ap = resume_state["step"], resume_state["best_ap"]
        _set_rng_state(resume_state["rng"])
        if ctx.main:
            log.info("resumed %s at epoch %d, iteration %d (step %d)", out / "last.pt", epoch, iter_in_epoch, step)

    ddp_model = torch.compile(model) if cfg.compile else model
    if ctx.world > 1:
        ddp_model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None
        )
    anchors_t = torch.tensor(mcfg.anchors, dtype=torch.float32, device=ctx.device)
    loss_cfg = RegionLossConfig(rescore=cfg.rescore, multi_anchor_iou=cfg.multi_anchor_iou)
    iters_per_epoch = len(epoch_order(len(train_set), cfg.seed, 0, ctx.rank, ctx.world)) // cfg.batch_size
    if iters_per_epoch == 0:
        raise ValueError(f"{len(train_set)} training images are fewer than one batch of {cfg.batch_size}")
    total_steps = cfg.epochs * iters_per_epoch

    if ctx.main:
        out.mkdir(parents=True, exist_ok=True)
        (out / "model_config.json").write_text(json.dumps(mcfg.to_dict(), indent=2) + "\n")
        (out / "train_config.json").write_text(json.dumps(asdict(cfg), indent=2) + "\n")
    log_file = open(out / "log.jsonl", "a") if ctx.main else None  # noqa: SIM115 (closed in finally)

    def write_log(record: dict[str, Any]) -> None:
        if log_file is not None:
            log_file.write(json.dumps(record) + "\n")
            log_file.flush()

    def checkpoint(names: tuple[str, ...], metrics: dict[str, float] | None = None) -> None:
        if not ctx.main:
            return
        payload = {
            "model_config": mcfg.to_dict(),
            # "model" is what evaluation and export read: the weight average when there is one;
            # "train_model" the raw weights that resume continues from.
            "model": (ema or model).state_dict(),
            **({"train_model": model.state_dict()} if ema is not None else {}),
            "train_config": asdict(cfg),
            "optimizer": optimizer.state_dict(),
            "epoch": epoch,
            "iter_in_epoch": iter_in_epoch,
            "step": step,
            "best_ap": best_ap,
            "metrics": metrics or {},
            "epoch_sums": {"sums": dict(sums), "iterations": done_here},  # so a resumed epoch logs its whole mean
            "rng": _rng_state(),
        }
        for name in names:
            save_checkpoint(out / name, payload)

    stopped = False
    try:
        while epoch < cfg.epochs and not stopped:
            order = epoch_order(len(train_set), cfg.seed, epoch, ctx.rank, ctx.world)
            batches = [order[i * cfg.batch_size : (i + 1) * cfg.batch_size] for i in range(iters_per_epoch)]
            loader = DataLoader(
                train_set, batch_sampler=batches[iter_in_epoch:], collate_fn=collate, num_workers=cfg.workers
            )
            ddp_model.train()
            # Loss sums of this epoch so far (a resumed epoch starts from the checkpoint's).
            carried = resume_state.get("epoch_sums", {}) if resume_state is not None and iter_in_epoch else {}
            sums: dict[str, float] = dict(carried.get("sums", {}))
            done_here = int(carried.get("iterations", 0))  # iterations of this epoch counted in sums
            progress = None
            if ctx.main and cfg.progress:
                from tqdm import tqdm

                progress = tqdm(total=iters_per_epoch, initial=iter_in_epoch, desc=f"epoch {epoch + 1}/{cfg.epochs}")
            tick, seen = time.perf_counter(), 0
            for images, targets in loader:
                lr = lr_at(step, cfg, total_steps)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                images = images.to(ctx.device, non_blocking=True).float()  # (B, 3, S, S) 0..255
                targets = {k: v.to(ctx.device) for k, v in targets.items()}
                raw = ddp_model(images)  # (B, A*5, S/32, S/32)
                terms = region_loss(raw.float(), targets, anchors_t, mcfg.stride, loss_cfg)
                finite = {k: float(v.detach()) for k, v in terms.items()}
                if not ctx.all_true(all(math.isfinite(v) for v in finite.values())):
                    bad = {k: v for k, v in finite.items() if not math.isfinite(v)}
                    raise NonFiniteLossError(
                        f"non-finite loss at epoch {epoch + 1}, iteration {iter_in_epoch + 1} (step {step}): "
                        f"offending terms {bad or '(on another rank)'}; all terms {finite}"
                    )
                optimizer.zero_grad(set_to_none=True)
                terms["total"].backward()
                if cfg.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                optimizer.step()
                if ema is not None:
                    ema.update(model)
                step += 1
                iter_in_epoch += 1
                seen += images.shape[0] * ctx.world
                done_here += 1
                for k, v in finite.items():
                    sums[k] = sums.get(k, 0.0) + v
                rate = seen / max(time.perf_counter() - tick, 1e-9)
                if progress is not None:
                    progress.update(1)
                    progress.set_postfix(
                        box=f"{finite['box']:.3f}", obj=f"{finite['obj']:.3f}", noobj=f"{finite['noobj']:.3f}",
                        lr=f"{lr:.1e}", img_s=f"{rate:.1f}",
                    )  # fmt: skip
                if step % cfg.log_every == 0:
                    write_log({"type": "step", "epoch": epoch, "iter": iter_in_epoch, "step": step, "lr": lr,
                               **finite, "img_per_s": rate})  # fmt: skip
                if cfg.max_steps is not None and step >= cfg.max_steps:
                    stopped = True
                if cfg.checkpoint_every and step % cfg.checkpoint_every == 0 or stopped:
                    checkpoint(("last.pt",))
                if stopped:
                    break
            if progress is not None:
                progress.close()
            if stopped and iter_in_epoch < iters_per_epoch:
                break
            # ---- end of epoch: validate (rank 0), keep best, checkpoint
            epoch += 1
            iter_in_epoch = 0
            record: dict[str, Any] = {"type": "epoch", "epoch": epoch, "step": step,
                                      **{f"train_{k}": v / max(done_here, 1) for k, v in sums.items()}}  # fmt: skip
            names: tuple[str, ...] = ("last.pt",)
            if ctx.main and val_set is not None and len(val_set):
                metrics = evaluate(ema.module if ema is not None else model, mcfg, val_set, ctx.device)
                record.update({f"val_{k}": v for k, v in metrics.items()})
                if metrics[cfg.select_metric] > best_ap:
                    best_ap = metrics[cfg.select_metric]
                    names = ("last.pt", "best.pt")
                log.info("epoch %d: val %s", epoch, " ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
                log.info("epoch %d: best %s %.4f", epoch, cfg.select_metric, best_ap)
            record["best_" + cfg.select_metric] = best_ap
            record["time"] = time.time()
            write_log(record)
            checkpoint(names, {k[4:]: v for k, v in record.items() if k.startswith("val_")})
            ctx.barrier()
    finally:
        if log_file is not None:
            log_file.close()
    return {"epoch": epoch, "iter_in_epoch": iter_in_epoch, "step": step, "best": best_ap, "out": str(out)}
