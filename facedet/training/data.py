"""Training data: parse a WIDER split, open its decoded-image cache, build the data sets, fit anchors."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from facedet.anchors import kmeans_anchors
from facedet.data.cache import ImageCache, default_cache_dir
from facedet.data.dataset import FaceDataset
from facedet.data.teacher import TeacherBoxes, load_or_run_teacher
from facedet.data.transforms import build_transforms
from facedet.data.wider import WiderSample, load_wider, seeded_subset
from facedet.training.checkpointing import checkpoint_anchors
from facedet.training.config import TrainConfig
from facedet.training.distributed import Dist

Anchors = tuple[tuple[float, float], ...]


def load_split(
    cfg: TrainConfig, split: str, limit: int | None, ctx: Dist, collective: bool = True
) -> tuple[list[WiderSample], ImageCache]:
    """Parse a split and open its decoded-image cache (rank 0 builds it; with ``collective`` every
    rank must call this, the others waiting at a barrier)."""
    samples, _ = load_wider(cfg.data_root, split)
    seed = cfg.val_seed if split == "val" and cfg.val_seed is not None else cfg.seed
    samples = seeded_subset(samples, limit, seed)
    if split == "train" and len(samples) < cfg.batch_size * ctx.world:  # checked before the slow cache build
        raise ValueError(
            f"{len(samples)} training images are fewer than one batch of {cfg.batch_size}"
            + (f" x {ctx.world} processes" if ctx.world > 1 else "")
            + f"; use --batch-size {max(1, len(samples) // ctx.world)} or more images"
        )
    cache_dir = Path(cfg.cache_dir) if cfg.cache_dir else default_cache_dir()
    paths = [s.path for s in samples]
    # Enough resolution for the 2x zoom-in of the train policy; 640 at least, so that runs at
    # different sizes up to 320 share one cache.
    max_side = max(640, 2 * cfg.img_size)
    # A new cache evicts older ones of the same name, so the name carries what selects the images
    # (subset size and seed, resolution): runs side by side with other seeds or sizes never evict
    # each other's caches, and subsets never evict the full cache.
    name = f"wider-{split}-{max_side}px" + (f"-n{limit}-s{seed}" if limit is not None else "")

    def build() -> ImageCache:
        return ImageCache.build(paths, cache_dir, name, max_side=max_side)

    # rank 0 decodes; the others wait, then open the finished cache
    return samples, ctx.main_first(build) if collective else build()


def build_datasets(cfg: TrainConfig, ctx: Dist) -> tuple[FaceDataset, FaceDataset | None]:
    """The training set (every rank) and the validation set (rank 0 only, else None)."""
    train_samples, train_cache = load_split(cfg, "train", cfg.max_images, ctx)
    val = load_split(cfg, "val", cfg.max_val_images, ctx, collective=False) if ctx.main else None
    policy = "scale" if cfg.sampling == "scale" else "train"
    transform = build_transforms(policy, cfg.img_size, cfg.face_min, cfg.face_max, cfg.gray)
    teacher = _teacher_boxes(cfg, train_cache, ctx) if cfg.teacher else None
    train_set = FaceDataset(train_samples, train_cache, transform, cfg.min_face, teacher, cfg.distill_weight)
    if val is None:
        return train_set, None
    return train_set, FaceDataset(val[0], val[1], build_transforms("eval", cfg.img_size), cfg.min_face)


def _teacher_boxes(cfg: TrainConfig, cache: ImageCache, ctx: Dist) -> TeacherBoxes:
    """The teacher's cached detections on the training images (rank 0 computes them once)."""
    teacher = cfg.teacher
    assert teacher is not None
    return ctx.main_first(lambda: load_or_run_teacher(cache, teacher, progress=cfg.progress and ctx.main))


def anchors_from_data(dataset: FaceDataset, img_size: int, k: int, seed: int) -> Anchors:
    """k-means (1 - IoU) anchors of the trainable boxes letterboxed to ``img_size``."""
    wh_all = []
    for i in range(len(dataset)):
        boxes, invalid = dataset.boxes_in_cache_frame(i)
        scale = img_size / max(dataset.cache.shape(i))
        wh = (boxes[:, 2:] - boxes[:, :2]) * scale
        wh_all.append(wh[~invalid & (wh.min(1) >= dataset.min_face)])
    anchors = kmeans_anchors(np.concatenate(wh_all), k, seed=seed)
    return tuple((round(float(w), 2), round(float(h), 2)) for w, h in anchors)


def anchors_from_samples(dataset: FaceDataset, k: int, seed: int, draws: int = 3000) -> Anchors:
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


def fit_anchors(cfg: TrainConfig, train_set: FaceDataset, preset: Anchors) -> Anchors:
    """The anchors a new run starts with: the ``--teacher-model``'s, ``preset``, the ``--init``
    checkpoint's, or k-means on what the model will see."""
    if cfg.teacher_model:  # TrainConfig has checked that --anchors is left at auto
        return checkpoint_anchors(cfg.teacher_model)
    if cfg.anchors == "preset":
        return preset
    if cfg.anchors == "init" and cfg.init:  # TrainConfig has checked that --init is given
        return checkpoint_anchors(cfg.init)
    if cfg.sampling == "scale":
        return anchors_from_samples(train_set, cfg.num_anchors, cfg.seed)
    return anchors_from_data(train_set, cfg.img_size, cfg.num_anchors, cfg.seed)
