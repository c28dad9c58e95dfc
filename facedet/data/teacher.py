"""Teacher detections for distillation: a strong peer run once over the training images, then cached.

Knowledge distillation here means *faces the annotation missed*: WIDER leaves some faces
unlabelled (blurred, occluded, in crowds), and a student trained on it learns to call them
background. RetinaFace-mnet (``facedet.peers.retinaface``, 0.966 FDDB TPR@1000 FP) is run once on
every cached training image; its confident detections that overlap no annotated box become extra,
soft positives (objectness target = the teacher's score, loss weight ``distill_weight``).

The cache is one ``.npz`` next to the decoded-image cache it was computed on (same key, so a
changed data set gets a new one): ``offsets`` (N+1,) int64, ``boxes`` (M, 4) float32 xyxy in
cached-image pixels, ``scores`` (M,) float32. Loaded with ``allow_pickle=False``. Torch-free.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from facedet.boxes import iou_matrix
from facedet.data.cache import ImageCache
from facedet.detections import Detections


@dataclass(frozen=True)
class TeacherBoxes:
    """Per-image teacher detections: image i owns rows ``offsets[i]:offsets[i + 1]``."""

    offsets: NDArray[np.int64]
    boxes: NDArray[np.float32]
    scores: NDArray[np.float32]

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def for_image(self, index: int) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
        """(K, 4) boxes and (K,) scores of image ``index`` (cached-image pixels)."""
        start, stop = int(self.offsets[index]), int(self.offsets[index + 1])
        return self.boxes[start:stop], self.scores[start:stop]

    def save(self, path: Path) -> None:
        tmp = path.with_name(f".{path.name}.tmp.npz")
        np.savez(tmp, offsets=self.offsets, boxes=self.boxes, scores=self.scores)
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path, expected_images: int) -> TeacherBoxes:
        """Read and check a cache file (a damaged or foreign one raises ValueError naming it)."""
        try:
            with np.load(path, allow_pickle=False) as data:
                offsets, boxes, scores = data["offsets"], data["boxes"], data["scores"]
        except (OSError, KeyError, ValueError) as exc:
            raise ValueError(f"{path}: not a readable teacher cache ({exc})") from exc
        consistent = (
            offsets.ndim == 1
            and len(offsets) == expected_images + 1
            and offsets[0] == 0
            and np.all(np.diff(offsets) >= 0)
            and boxes.shape == (int(offsets[-1]), 4)
            and scores.shape == (int(offsets[-1]),)
        )
        if not consistent:
            raise ValueError(f"{path}: teacher cache does not match the {expected_images} cached images")
        return cls(offsets.astype(np.int64), boxes.astype(np.float32), scores.astype(np.float32))


def teacher_cache_path(cache: ImageCache, teacher: str) -> Path:
    """``<image cache stem>.teacher-<name>.npz`` beside the image cache."""
    return cache.data_file.with_name(f"{cache.data_file.stem}.teacher-{teacher}.npz")


def run_teacher(
    cache: ImageCache,
    detect: Callable[[NDArray[np.uint8]], Detections],
    min_score: float = 0.3,
    progress: bool = True,
) -> TeacherBoxes:
    """Detect on every cached image and keep detections scoring at least ``min_score``."""
    from tqdm import tqdm

    offsets, boxes, scores = [0], [], []
    for index in tqdm(range(len(cache)), desc="teacher", disable=not progress):
        found = detect(np.ascontiguousarray(cache.get(index)))
        keep = found.scores >= min_score
        boxes.append(found.boxes[keep].reshape(-1, 4))
        scores.append(found.scores[keep])
        offsets.append(offsets[-1] + int(keep.sum()))
    return TeacherBoxes(
        np.asarray(offsets, np.int64),
        np.concatenate(boxes).astype(np.float32) if boxes else np.zeros((0, 4), np.float32),
        np.concatenate(scores).astype(np.float32) if scores else np.zeros(0, np.float32),
    )


def load_or_run_teacher(cache: ImageCache, teacher: str, progress: bool = True) -> TeacherBoxes:
    """The cached teacher detections of ``cache``, computing them once with the named peer."""
    path = teacher_cache_path(cache, teacher)
    if path.is_file():
        return TeacherBoxes.load(path, len(cache))
    from facedet.peers import load_peer

    detector = load_peer(teacher)
    result = run_teacher(cache, detector.detect, progress=progress)
    result.save(path)
    return result


def missed_faces(
    annotated: NDArray[np.float32],
    teacher_boxes: NDArray[np.float32],
    teacher_scores: NDArray[np.float32],
    min_score: float = 0.5,
    max_iou: float = 0.3,
) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """Teacher detections (score >= ``min_score``) overlapping no annotated box (IoU < ``max_iou``),
    ignore regions included: the faces the annotation missed."""
    confident = teacher_scores >= min_score
    boxes, scores = teacher_boxes[confident], teacher_scores[confident]
    if len(annotated) and len(boxes):
        unmatched = iou_matrix(boxes, annotated).max(axis=1) < max_iou
        boxes, scores = boxes[unmatched], scores[unmatched]
    return boxes.reshape(-1, 4), scores
