"""Distillation from a teacher: cached detections, faces the annotation missed, weighted soft targets."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from facedet.data.cache import ImageCache
from facedet.data.dataset import FaceDataset, collate
from facedet.data.teacher import TeacherBoxes, load_or_run_teacher, missed_faces, run_teacher, teacher_cache_path
from facedet.data.transforms import build_transforms
from facedet.data.wider import load_wider
from facedet.detections import Detections
from facedet.loss import region_loss


def test_missed_faces_keeps_confident_unmatched_teacher_boxes() -> None:
    annotated = np.array([[0, 0, 10, 10]], np.float32)
    teacher = np.array([[1, 1, 10, 10], [20, 20, 30, 30], [40, 40, 50, 50], [5, 0, 15, 10]], np.float32)
    scores = np.array([0.9, 0.8, 0.4, 0.95], np.float32)
    boxes, kept = missed_faces(annotated, teacher, scores, min_score=0.5, max_iou=0.3)
    # box 0 matches the annotation (IoU .81), box 2 is not confident, box 3 overlaps 50/150 = .33
    assert boxes.tolist() == [[20, 20, 30, 30]] and kept.tolist() == pytest.approx([0.8])
    boxes, _ = missed_faces(np.zeros((0, 4), np.float32), teacher, scores)
    assert len(boxes) == 3


def _cache(wider_root: Path, tmp_path: Path) -> tuple[list, ImageCache]:
    samples, _ = load_wider(wider_root, "train")
    return samples, ImageCache.build([s.path for s in samples], tmp_path, "t", max_side=640)


def test_teacher_cache_runs_once_and_round_trips(wider_root: Path, tmp_path: Path) -> None:
    _, cache = _cache(wider_root, tmp_path)
    calls = []

    def fake_detector(image: np.ndarray) -> Detections:
        calls.append(image.shape)
        return Detections(np.array([[1, 2, 11, 12], [3, 3, 5, 5]], np.float32), np.array([0.9, 0.1], np.float32))

    result = run_teacher(cache, fake_detector, min_score=0.3, progress=False)
    assert len(calls) == len(cache) == len(result) and result.offsets[-1] == len(cache)  # one kept per image
    path = teacher_cache_path(cache, "fake")
    result.save(path)
    loaded = TeacherBoxes.load(path, len(cache))
    boxes, scores = loaded.for_image(3)
    assert boxes.tolist() == [[1, 2, 11, 12]] and scores.tolist() == pytest.approx([0.9])
    assert load_or_run_teacher(cache, "fake").offsets.tolist() == loaded.offsets.tolist()  # read, not re-run
    with pytest.raises(ValueError, match="does not match the 3 cached images"):
        TeacherBoxes.load(path, 3)
    path.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a readable teacher cache"):
        TeacherBoxes.load(path, len(cache))


def test_dataset_adds_teacher_only_faces_as_weighted_soft_targets(wider_root: Path, tmp_path: Path) -> None:
    samples, cache = _cache(wider_root, tmp_path)
    # Image 1 (96 x 128) has one annotated face at (20, 40, 60, 88); the teacher finds it and another.
    offsets = np.array([0, 0] + [2] * (len(cache) - 1), np.int64)
    teacher = TeacherBoxes(
        offsets, np.array([[21, 41, 60, 88], [60, 4, 90, 40]], np.float32), np.array([0.99, 0.8], np.float32)
    )
    dataset = FaceDataset(samples, cache, build_transforms("eval", 128), 4.0, teacher=teacher, distill_weight=0.5)
    _, target = dataset[1]
    assert target["boxes"].shape == (2, 4)  # the matched teacher box is not added twice
    assert target["weight"].tolist() == [1.0, 0.5] and target["obj_target"].tolist() == pytest.approx([1.0, 0.8])
    # Without a teacher the targets say 1 and 1, and collate pads with ones.
    plain = FaceDataset(samples, cache, build_transforms("eval", 128), 4.0)
    _, batch = collate([plain[0], plain[1]])
    assert batch["weight"].shape == batch["mask"].shape and bool((batch["weight"] == 1).all())
    with pytest.raises(ValueError, match="teacher detections cover"):
        FaceDataset(
            samples, cache, build_transforms("eval", 128), teacher=TeacherBoxes(offsets[:3], *teacher.for_image(1))
        )


def test_teacher_face_weight_and_soft_objectness_in_the_loss() -> None:
    anchors = torch.tensor([[20.0, 20.0]])
    face = [6.0, 6.0, 26.0, 26.0]  # cell (0, 0), exactly the anchor: box loss only from offsets
    raw = torch.zeros(1, 5, 2, 2, dtype=torch.float64)
    raw[0, 0, 0, 0] = 0.4  # sigmoid(0.4) = 0.5987 vs the 0.5 offset
    targets = {
        "boxes": torch.tensor([[face]]),
        "ignore": torch.tensor([[False]]),
        "mask": torch.tensor([[True]]),
        "weight": torch.tensor([[0.5]]),
        "obj_target": torch.tensor([[0.8]]),
    }
    terms = region_loss(raw, targets, anchors, 32)
    dx = 1 / (1 + math.exp(-0.4)) - 0.5
    assert float(terms["box"]) == pytest.approx(0.5 * (2 - 400 / 64**2) * dx**2, rel=1e-9)
    # BCE(logit 0, target 0.8) = log 2 whatever the target, weighted by 0.5
    assert float(terms["obj"]) == pytest.approx(0.5 * math.log(2), rel=1e-9)
    raw[0, 4, 0, 0] = 1.0
    p = 1 / (1 + math.exp(-1.0))
    expected = -0.5 * (0.8 * math.log(p) + 0.2 * math.log(1 - p))
    assert float(region_loss(raw, targets, anchors, 32)["obj"]) == pytest.approx(expected, rel=1e-6)  # 0.8 in float32
