"""``FaceDataset``: cached WIDER images -> augmented, letterboxed uint8 tensors + face targets.

A sample is ``(image, target)``:
- image: uint8 (3, S, S) BGR, letterboxed to the training size S (the model takes 0..255 pixels);
- target: ``{"boxes": float32 (K, 4) xyxy in network pixels, "ignore": bool (K,)}``.

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
from facedet.data.wider import WiderSample

Target = dict[str, Tensor]


class FaceDataset(Dataset):
    """WIDER samples read from an ``ImageCache`` and passed through an albumentations transform.

    Args:
        samples: parsed annotations; ``samples[i]`` is cache entry ``i``.
        cache: decoded images in the same order.
        transform: a ``facedet.data.transforms.build_transforms`` pipeline.
        min_face: faces whose width or height at the network input is below this become ignore.
    """

    def __init__(
        self, samples: Sequence[WiderSample], cache: ImageCache, transform: Callable[..., Any], min_face: float = 4.0
    ) -> None:
        if len(samples) != len(cache):
            raise ValueError(f"{len(samples)} samples but {len(cache)} cached images")
        self.samples = list(samples)
        self.cache = cache
        self.transform = transform
        self.min_face = float(min_face)

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
        out = self.transform(image=image, bboxes=boxes, ignore=invalid.astype(np.int64))
        boxes_out = np.asarray(out["bboxes"], np.float32).reshape(-1, 4)  # (K, 4) network pixels
        ignore = np.asarray(out["ignore"], bool).reshape(-1)
        wh = boxes_out[:, 2:] - boxes_out[:, :2]
        ignore = ignore | (wh.min(axis=1) < self.min_face)
        pixels = torch.from_numpy(np.ascontiguousarray(out["image"].transpose(2, 0, 1)))  # (3, S, S) uint8
        return pixels, {"boxes": torch.from_numpy(boxes_out), "ignore": torch.from_numpy(ignore)}


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
        ``mask`` bool (B, K) (True where a real box, padded entries are False).
    """
    images = torch.stack([image for image, _ in batch])
    k = max((t["boxes"].shape[0] for _, t in batch), default=0)
    boxes = torch.zeros(len(batch), k, 4)
    ignore = torch.zeros(len(batch), k, dtype=torch.bool)
    mask = torch.zeros(len(batch), k, dtype=torch.bool)
    for i, (_, target) in enumerate(batch):
        n = target["boxes"].shape[0]
        boxes[i, :n] = target["boxes"]
        ignore[i, :n] = target["ignore"]
        mask[i, :n] = True
    return images, {"boxes": boxes, "ignore": ignore, "mask": mask}
