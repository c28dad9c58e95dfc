"""IoU and NMS, the shared post-processing every model is scored by, on hand-computed boxes."""

from __future__ import annotations

import numpy as np
import pytest

from facedet.boxes import iou_matrix, nms


def test_iou_matrix_hand_computed() -> None:
    a = np.array([[0, 0, 10, 10], [0, 0, 0, 0]], np.float32)
    b = np.array([[5, 0, 15, 10], [0, 0, 10, 10], [20, 20, 30, 30]], np.float32)
    iou = iou_matrix(a, b)
    assert iou.shape == (2, 3)
    assert iou[0].tolist() == pytest.approx([50 / 150, 1.0, 0.0])
    assert iou[1].tolist() == [0.0, 0.0, 0.0]  # an empty box overlaps nothing (no division by zero)


def test_nms_keeps_the_best_of_each_overlapping_group_in_score_order() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [20, 20, 30, 30], [5, 0, 15, 10]], np.float32)
    scores = np.array([0.6, 0.9, 0.5, 0.7], np.float32)
    # box 1 (0.9) suppresses box 0 (IoU 90/110); box 3 overlaps box 1 by 60/140 = 0.43 > 0.4
    assert nms(boxes, scores, 0.4).tolist() == [1, 2]
    assert nms(boxes, scores, 0.5).tolist() == [1, 3, 2]
    # equal scores: the lower index first (stable), so results are deterministic
    assert nms(boxes[:2], np.array([0.5, 0.5]), 0.95).tolist() == [0, 1]
    assert nms(np.zeros((0, 4)), np.zeros(0), 0.4).tolist() == []
