"""Train a face detector on WIDER Face (works under ``torchrun`` for DDP).

Example: facedet train --model ifq-tinier-yolo --data-root ../shared/data/widerface --img-size 320
--epochs 30 --batch-size 32 --out runs/ifq. Re-run with --resume to continue from out/last.pt.
"""

from __future__ import annotations

import argparse

MODEL_NAMES = ("tiny-yolo", "ifq-tinier-yolo", "dupnet-tinier-yolo")  # facedet.models.MODELS (torch-free here)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, choices=MODEL_NAMES, help="detector family")
    parser.add_argument("--data-root", default="data", help="WIDER Face root or a folder with widerface/ (data)")
    parser.add_argument("--img-size", type=int, default=320, help="square training input, multiple of 32 (default 320)")
    parser.add_argument("--epochs", type=int, default=30, help="epochs (default 30)")
    parser.add_argument("--batch-size", type=int, default=32, help="images per step and per process (default 32)")
    parser.add_argument("--out", required=True, help="output folder: last.pt, best.pt, log.jsonl, *_config.json")
    parser.add_argument("--resume", action="store_true", help="continue from OUT/last.pt if it exists")
    parser.add_argument("--max-images", type=int, default=None, help="use a seeded subset of N training images")
    parser.add_argument("--max-val-images", type=int, default=None, help="validate on a seeded subset of N images")
    parser.add_argument("--max-steps", type=int, default=None, help="stop after N optimizer steps in total")
    parser.add_argument("--workers", type=int, default=1, help="data-loader worker processes (default 1)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads per process (default: cores/processes)")
    parser.add_argument("--seed", type=int, default=0, help="seed of init, order and augmentation (default 0)")
    parser.add_argument("--lr", type=float, default=1e-3, help="peak AdamW learning rate (default 1e-3)")
    parser.add_argument("--warmup-steps", type=int, default=200, help="linear warmup steps (default 200)")
    parser.add_argument("--weight-decay", type=float, default=0.01, help="AdamW decay of conv weights (default 0.01)")
    parser.add_argument("--anchors", choices=("auto", "preset"), default="auto",
                        help="auto: k-means (1-IoU) on the training boxes (default); preset: the model's")  # fmt: skip
    parser.add_argument("--min-face", type=float, default=4.0, help="faces under N px at the input are ignored (4)")
    parser.add_argument("--rescore", action="store_true", help="objectness target = IoU (darknet rescore)")
    parser.add_argument("--init", default=None, help="start from the weights of a compatible checkpoint")
    parser.add_argument("--cache-dir", default=None, help="decoded-image cache ($FACEDET_CACHE, ~/.cache/facedet)")
    parser.add_argument("--checkpoint-every", type=int, default=200, help="also write last.pt every N steps (200)")
    parser.add_argument("--log-every", type=int, default=10, help="log.jsonl line every N steps (default 10)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="default: cuda if present")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    recipe = parser.add_argument_group("scale-aware recipe")
    recipe.add_argument("--sampling", choices=("scale", "letterbox"), default="scale",
                        help="scale: face-centred crops (default); letterbox: whole images")  # fmt: skip
    recipe.add_argument("--face-min", type=float, default=16.0, help="smallest drawn face height, px (16)")
    recipe.add_argument("--face-max", type=float, default=320.0, help="largest drawn face height, px (320)")
    recipe.add_argument("--deploy-size", type=int, default=416,
                        help="input size stored in the model config: validation, export, detect (416)")  # fmt: skip
    recipe.add_argument("--multi-anchor-iou", type=float, default=0.35,
                        help="extra positive anchors at this shape IoU; <0 = best anchor only (0.35)")  # fmt: skip
    recipe.add_argument("--ema-decay", type=float, default=0.9998, help="weight EMA decay, 0 = off (0.9998)")
    recipe.add_argument("--select-metric", choices=("ap50", "ap50_ge16", "ap50_ge48"), default="ap50_ge48",
                        help="WIDER-val metric that picks best.pt (ap50_ge48)")  # fmt: skip
    recipe.add_argument("--compile", action="store_true", help="torch.compile the model (faster steps after warm-up)")


def run(args: argparse.Namespace) -> int:
    import logging
    import os
    import sys

    from facedet.train import NonFiniteLossError, TrainConfig, train

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        cfg = _config(args, TrainConfig)
        result = train(cfg)
    except NonFiniteLossError as exc:
        print(f"training stopped: {exc}", file=sys.stderr)
        return 1
    except (ValueError, OSError) as exc:  # bad arguments, data root, checkpoint: one line, no traceback
        print(f"facedet train: error: {exc}", file=sys.stderr)
        return 2
    if os.environ.get("RANK", "0") != "0":  # under torchrun only rank 0 reports
        return 0
    print(
        f"done: epoch {result['epoch']}, step {result['step']}, best val {cfg.select_metric} {result['best']:.4f}; "
        f"checkpoints in {result['out']}"
    )
    return 0


def _config(args: argparse.Namespace, config_class: type) -> object:
    return config_class(
        model=args.model, data_root=args.data_root, out=args.out, img_size=args.img_size, epochs=args.epochs,
        batch_size=args.batch_size, lr=args.lr, warmup_steps=args.warmup_steps, weight_decay=args.weight_decay,
        seed=args.seed, workers=args.workers, threads=args.threads, device=args.device, anchors=args.anchors,
        min_face=args.min_face, max_images=args.max_images, max_val_images=args.max_val_images,
        max_steps=args.max_steps, cache_dir=args.cache_dir, checkpoint_every=args.checkpoint_every,
        log_every=args.log_every, resume=args.resume, init=args.init, rescore=args.rescore,
        progress=not args.no_progress, sampling=args.sampling, face_min=args.face_min, face_max=args.face_max,
        deploy_size=args.deploy_size, multi_anchor_iou=args.multi_anchor_iou if args.multi_anchor_iou >= 0 else None,
        ema_decay=args.ema_decay, select_metric=args.select_metric, compile=args.compile,
    )  # fmt: skip
