"""Training throughput on this machine: each model's training images/s, and the data pipeline alone.

Usage: python scripts/bench_train.py --data-root ../shared/data/widerface [--img-size 320]
[--batch-size 16] [--iters 4] [--models tiny-yolo,ifq-tinier-yolo,dupnet-tinier-yolo]
[--modes eager,nhwc,nhwc-bf16,compile]

- model: full training steps (forward, region loss, backward, AdamW) on real augmented batches
  held in memory, so the number excludes data loading; the first step is a warm-up, not timed.
  Each of ``--modes``: ``eager`` (float32, NCHW), ``nhwc`` (``facedet train --channels-last``),
  ``nhwc-bf16`` (``--channels-last --bf16``), ``compile`` (``--compile``; its first step, which
  compiles, is the warm-up and its time is reported apart).
- pipeline: cached images -> train augmentation -> collate through a DataLoader with
  ``--workers`` processes (the same path as ``facedet train``), no model.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import torch
from torch.utils.data import DataLoader

from facedet.data.dataset import FaceDataset, collate
from facedet.data.transforms import build_transforms
from facedet.loss import region_loss
from facedet.models import MODELS, build_model, model_config
from facedet.training.config import TrainConfig
from facedet.training.data import load_split
from facedet.training.distributed import Dist
from facedet.training.schedule import epoch_order


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default="data")
    parser.add_argument("--img-size", type=int, default=320)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--iters", type=int, default=4, help="timed training steps per model")
    parser.add_argument("--pipeline-images", type=int, default=512)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--modes", default="eager", help="comma-separated: eager, nhwc, nhwc-bf16, compile")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    cfg = TrainConfig(data_root=args.data_root, img_size=args.img_size, cache_dir=args.cache_dir)
    t0 = time.perf_counter()
    samples, cache = load_split(cfg, "train", None, Dist("cpu"))
    print(f"cache ready: {len(samples)} images in {time.perf_counter() - t0:.1f} s ({cache.data_file})")
    dataset = FaceDataset(samples, cache, build_transforms("train", args.img_size))
    order = epoch_order(len(dataset), 0, 0)
    results: dict[str, float] = {}

    # ---- data pipeline alone
    n = min(args.pipeline_images, len(order))
    batches = [order[i : i + args.batch_size] for i in range(0, n - args.batch_size + 1, args.batch_size)]
    loader = DataLoader(dataset, batch_sampler=batches, collate_fn=collate, num_workers=args.workers)
    iterator = iter(loader)
    next(iterator)  # worker start-up and first batch are not timed
    tick, seen = time.perf_counter(), 0
    for images, _ in iterator:
        seen += images.shape[0]
    results["pipeline"] = seen / (time.perf_counter() - tick)
    print(f"pipeline ({args.workers} worker(s), train augmentation): {results['pipeline']:.1f} images/s")

    # ---- each model's training step on in-memory batches
    fixed = [collate([dataset[item] for item in order[i * args.batch_size : (i + 1) * args.batch_size]])
             for i in range(2)]  # fmt: skip
    for name in args.models.split(","):
        for mode in args.modes.split(","):
            rate, warmup = _train_rate(name, mode, fixed, args)
            results[f"{name}/{mode}"] = rate
            print(f"{name:20s} {mode:10s} train step: {rate:.2f} images/s (batch {args.batch_size}, "
                  f"{args.img_size} px; first step {warmup:.1f} s)")  # fmt: skip
    print(json.dumps({"img_size": args.img_size, "batch_size": args.batch_size, "threads": args.threads, **results}))


def _train_rate(name: str, mode: str, fixed: list, args: argparse.Namespace) -> tuple[float, float]:
    """(images/s over ``args.iters`` timed steps, seconds of the untimed first step) in ``mode``."""
    mcfg = model_config(name, img_size=args.img_size)
    model = build_model(mcfg).train()
    channels_last = mode.startswith("nhwc")
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    forward = torch.compile(model) if mode == "compile" else model
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    anchors = torch.tensor(mcfg.anchors)
    times = []
    for it in range(args.iters + 1):
        images, targets = fixed[it % 2]
        images = images.float()
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        tick = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=mode.endswith("bf16")):
            raw = forward(images)
        terms = region_loss(raw.float(), targets, anchors, mcfg.stride)
        optimizer.zero_grad()
        terms["total"].backward()
        optimizer.step()
        times.append(time.perf_counter() - tick)
    return args.batch_size * args.iters / sum(times[1:]), times[0]


if __name__ == "__main__":
    main()
