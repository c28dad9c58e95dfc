"""``FaceDataset``: cached WIDER images -> augmented, letterboxed uint8 tensors + face targets.

A sample is ``(image, target)``:
- image: uint8 (3, S, S) BGR, letterboxed to the training size S (the model takes 0..255 pixels);
- target: ``{"boxes": float32 (K, 4) xyxy in network pixels, "ignore": bool (K,), "weight": float32
  (K,) loss weight, "obj_target": float32 (K,) objectness target}`` (1 and 1 for annotated faces).

With a ``teacher`` (``facedet.data.teacher``), the teacher's confident detections that overlap no
annotated box are added as soft faces: weight ``distill_weight``, objectness target = teacher score.

Faces that are officially ``invalid`` or smaller than ``min_face`` pixels (either side) at the
network input become *ignore regions*: the loss neither asks them to be detected nor penalises
detections near them (a 3-pixel face is not learnable on a stride-32 grid, but it is a face).

Augmentation is seeded per sample: the sampler may pass ``(index, seed)`` instead of ``index``,
so a given (epoch, position) always produces the same pixels regardless of the number of
workers, which makes resumed training repeat exactly.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from facedet.data.cache import ImageCache
from facedet.data.teacher import TeacherBoxes, missed_faces
from facedet.data.wider import WiderSample

Target = dict[str, Tensor]


class FaceDataset(Dataset):
    """WIDER samples read from an ``ImageCache`` and passed through an albumentations transform.

    Args:
        samples: parsed annotations; ``samples[i]`` is cache entry ``i``.
        cache: decoded images in the same order.
        transform: a ``facedet.data.transforms.build_transforms`` pipeline.
        min_face: faces whose width or height at the network input is below this become ignore.
        teacher: cached teacher detections, one entry per cache image (distillation), or None.
        distill_weight: loss weight of a teacher-only face.
    """

    def __init__(
        self,
        samples: Sequence[WiderSample],
        cache: ImageCache,
        transform: Callable[..., Any],
        min_face: float = 4.0,
        teacher: TeacherBoxes | None = None,
        distill_weight: float = 1.0,
    ) -> None:
        if len(samples) != len(cache):
            raise ValueError(f"{len(samples)} samples but {len(cache)} cached images")
        self.samples = list(samples)
        self.cache = cache
        self.transform = transform
        self.min_face = float(min_face)
        if teacher is not None and len(teacher) != len(cache):
            raise ValueError(f"teacher detections cover {len(teacher)} images, the cache {len(cache)}")
        self.teacher = teacher
        self.distill_weight = float(distill_weight)

    def __len__(self) -> int:
        return len(self.samples)

    def boxes_in_cache_frame(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """(K, 4) float32 boxes scaled to the cached image, (K,) invalid flags; degenerate boxes dropped."""
        sample = self.samples[index]
        height, width = self.cache.shape(index)
        # The cache may have shrunk the image; annotation boxes are in original pixels.
        original = _original_size(self.cache, index)
        sx, sy = width / original[1], height / original[0]
        boxes = sample.boxes * np.array([sx, sy, sx, sy], np.float32)
        boxes[:, 0::2] = np.clip(boxes[:, 0::2], 0, width)
        boxes[:, 1::2] = np.clip(boxes[:, 1::2], 0, height)
        keep = (boxes[:, 2] - boxes[:, 0] > 0.5) & (boxes[:, 3] - boxes[:, 1] > 0.5)
        return boxes[keep], sample.invalid[keep]

    def __getitem__(self, item: int | tuple[int, int]) -> tuple[Tensor, Target]:
        index, seed = item if isinstance(item, tuple) else (item, None)
        if seed is not None and hasattr(self.transform, "set_random_seed"):
            self.transform.set_random_seed(int(seed))
        image = np.asarray(self.cache.get(index))
        boxes, invalid = self.boxes_in_cache_frame(index)
        weight = np.ones(len(boxes), np.float32)
        obj_target = np.ones(len(boxes), np.float32)
        if self.teacher is not None:
            extra, scores = missed_faces(boxes, *self.teacher.for_image(index))
            boxes = np.concatenate([boxes, extra]).astype(np.float32)
            invalid = np.concatenate([invalid, np.zeros(len(extra), bool)])
            weight = np.concatenate([weight, np.full(len(extra), self.distill_weight, np.float32)])
            obj_target = np.concatenate([obj_target, scores.astype(np.float32)])
        # Label = 2 * source index + ignore bit: the transforms carry it with each surviving box.
        labels = 2 * np.arange(len(boxes), dtype=np.int64) + invalid.astype(np.int64)
        out = self.transform(image=image, bboxes=boxes, ignore=labels)
        boxes_out = np.asarray(out["bboxes"], np.float32).reshape(-1, 4)  # (K, 4) network pixels
        labels_out = np.asarray(out["ignore"], np.int64).reshape(-1)
        source = labels_out >> 1
        wh = boxes_out[:, 2:] - boxes_out[:, :2]
        ignore = (labels_out & 1).astype(bool) | (wh.min(axis=1) < self.min_face)
        pixels = torch.from_numpy(np.ascontiguousarray(out["image"].transpose(2, 0, 1)))  # (3, S, S) uint8
        return pixels, {
            "boxes": torch.from_numpy(boxes_out),
            "ignore": torch.from_numpy(ignore),
            "weight": torch.from_numpy(weight[source]),
            "obj_target": torch.from_numpy(obj_target[source]),
        }


def _original_size(cache: ImageCache, index: int) -> tuple[int, int]:
    """(height, width) of the image before the cache shrank it (older caches lack it: the cached size)."""
    entry = cache.entries[index]
    if "original_shape" in entry:
        return tuple(entry["original_shape"][:2])  # type: ignore[return-value]
    return cache.shape(index)


def collate(batch: Sequence[tuple[Tensor, Target]]) -> tuple[Tensor, Target]:
    """Stack images and pad box lists to the batch maximum.

    Returns:
        images: uint8 (B, 3, S, S); targets: ``boxes`` float32 (B, K, 4), ``ignore`` bool (B, K),
        ``mask`` bool (B, K) (True where a real box, padded entries are False), ``weight`` and
        ``obj_target`` float32 (B, K) (1 where absent from a sample's target).
    """
    images = torch.stack([image for image, _ in batch])
    k = max((t["boxes"].shape[0] for _, t in batch), default=0)
    boxes = torch.zeros(len(batch), k, 4)
    ignore = torch.zeros(len(batch), k, dtype=torch.bool)
    mask = torch.zeros(len(batch), k, dtype=torch.bool)
    weight = torch.ones(len(batch), k)
    obj_target = torch.ones(len(batch), k)
    for i, (_, target) in enumerate(batch):
        n = target["boxes"].shape[0]
        boxes[i, :n] = target["boxes"]
        ignore[i, :n] = target["ignore"]
        mask[i, :n] = True
        if "weight" in target:
            weight[i, :n] = target["weight"]
        if "obj_target" in target:
            obj_target[i, :n] = target["obj_target"]
    return images, {"boxes": boxes, "ignore": ignore, "mask": mask, "weight": weight, "obj_target": obj_target}
