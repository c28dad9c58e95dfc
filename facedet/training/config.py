"""``TrainConfig``: everything about *how* a model is trained (the model itself is a ``ModelConfig``).

Torch-free, so that ``facedet train --help`` and argument checks need no torch. The config
checks itself when built (``__post_init__``): a bad value fails in one line before any data is
read or any image is decoded.
"""

from __future__ import annotations

from dataclasses import dataclass

from facedet.config import PRECISIONS

VAL_METRICS = ("ap50", "ap50_ge16", "ap50_ge48")  # WIDER-val AP50: all faces, faces >= 16 px, >= 48 px
SAMPLING = ("scale", "letterbox")
ANCHORS = ("auto", "preset", "init")
DEVICES = ("auto", "cpu", "cuda")
STRIDE = 32  # every model's total stride: input sizes are multiples of it


@dataclass(frozen=True)
class TrainConfig:
    """Every knob of a training run; ``facedet train`` builds one from its flags (one per field)."""

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
    anchors: str = "auto"  # "auto" = k-means on the training boxes, "preset" = the preset's,
    # "init" = the --init checkpoint's (a fine-tune keeps the shapes its head learned)
    num_anchors: int = 5
    min_face: float = 4.0  # faces below this (pixels at the input) are ignore regions
    max_images: int | None = None
    max_val_images: int | None = None
    val_seed: int | None = None  # seed of the --max-val-images subset; None = seed
    max_steps: int | None = None  # stop after this many optimizer steps in total (tests, benchmarks)
    cache_dir: str | None = None
    checkpoint_every: int = 200
    log_every: int = 10
    resume: bool = False
    init: str | None = None
    rescore: bool = False
    progress: bool = True
    # ---- the scale-aware recipe (train for the face sizes the deployed input sees)
    sampling: str = "scale"  # "scale": face-centred crops (facedet.data.scale_sampling); "letterbox": whole images
    face_min: float = 16.0  # drawn face heights, network pixels (log-uniform)
    face_max: float = 320.0
    gray: float = 0.1  # probability of a grayscale training image (0 = colour only, the runs before 2026-12-02)
    deploy_size: int | None = 416  # the model config's input size (validation, export); None = img_size
    multi_anchor_iou: float | None = 0.35  # extra positive anchors (RegionLossConfig.multi_anchor_iou)
    ema_decay: float = 0.9998  # 0 = no weight averaging
    select_metric: str = "ap50_ge48"  # validation metric that picks best.pt
    compile: bool = False  # torch.compile the model's forward
    channels_last: bool = False  # NHWC weights and batches (oneDNN's faster layout on CPU)
    bf16: bool = False  # bfloat16 autocast of the forward (AMX/AVX-512 bf16; the loss stays float32)
    progressive: float = 0.0  # ancillary float convs fade out over this fraction of the run (0 = off)
    precision: str = "full"  # training stage of a quantized model (facedet.models.precision)
    # ---- distillation (facedet.data.teacher): faces only the teacher found become soft positives
    teacher: str | None = None  # a peer name (retinaface-mnet); None = no teacher
    distill_weight: float = 0.5  # loss weight of a teacher-only face
    # ---- dense distillation (facedet.training.dense_distill): learn a trained detector's head maps
    teacher_model: str | None = None  # a facedet checkpoint of the same stride; the student takes its anchors
    teacher_weight: float = 1.0  # weight of the distillation terms

    def __post_init__(self) -> None:
        from facedet.models import MODELS  # torch-free: the presets are plain configs

        for name, allowed in (
            ("model", tuple(MODELS)),
            ("sampling", SAMPLING),
            ("anchors", ANCHORS),
            ("device", DEVICES),
            ("select_metric", VAL_METRICS),
            ("precision", PRECISIONS),
        ):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        for name in ("img_size", "deploy_size"):
            value = getattr(self, name)
            if value is not None and (value <= 0 or value % STRIDE):
                raise ValueError(f"{name} must be a positive multiple of {STRIDE}, got {value}")
        if not 0 < self.face_min <= self.face_max:
            raise ValueError(f"need 0 < face_min <= face_max, got {self.face_min}, {self.face_max}")
        if self.batch_size < 1 or self.epochs < 1 or self.num_anchors < 1:
            raise ValueError("batch_size, epochs and num_anchors must be at least 1")
        if self.max_images is not None and self.max_images < self.batch_size:
            raise ValueError(
                f"{self.max_images} training images are fewer than one batch of {self.batch_size}; "
                f"use --batch-size {max(1, self.max_images)} or more images"
            )
        if self.anchors == "init" and not self.init:
            raise ValueError("anchors 'init' takes the --init checkpoint's anchors: give --init")
        if self.distill_weight < 0 or self.teacher_weight < 0:
            raise ValueError(f"distill_weight and teacher_weight must be >= 0, got {self.distill_weight}, "
                             f"{self.teacher_weight}")  # fmt: skip
        if self.teacher_model and self.anchors != "auto":
            raise ValueError(
                f"anchors {self.anchors!r} and --teacher-model: the student takes the teacher's anchors "
                "(leave --anchors at auto)"
            )
        if not 0.0 <= self.progressive <= 1.0:
            raise ValueError(f"progressive must be a fraction of the run in [0, 1], got {self.progressive}")
        if not 0.0 <= self.gray <= 1.0:
            raise ValueError(f"gray must be a probability in [0, 1], got {self.gray}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
