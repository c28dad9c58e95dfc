"""YOLOv2 region loss: perfect prediction, a hand-computed case, empty targets, ignore regions.

Expected values are computed here with numpy/math from the formulas in ``facedet/loss.py``'s
docstring (darknet's region layer), not by calling the implementation's helpers.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from numpy.typing import NDArray

from facedet.loss import RegionLossConfig, region_loss

STRIDE = 32
GRID = 2  # 64 x 64 input, 2 x 2 cells


def _logit(p: float) -> float:
    return math.log(p / (1 - p))


def _sigmoid(x: NDArray[np.float64]) -> NDArray[np.float64]:
    return 1 / (1 + np.exp(-x))


def _iou(a: NDArray[np.float64], b: NDArray[np.float64]) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def _targets(boxes: list[list[list[float]]], ignore: list[list[bool]]) -> dict[str, torch.Tensor]:
    """Padded batch targets as ``facedet.data.dataset.collate`` builds them."""
    k = max((len(b) for b in boxes), default=0)
    out_boxes = torch.zeros(len(boxes), k, 4)
    out_ignore = torch.zeros(len(boxes), k, dtype=torch.bool)
    mask = torch.zeros(len(boxes), k, dtype=torch.bool)
    for i, (b, g) in enumerate(zip(boxes, ignore, strict=True)):
        if b:
            out_boxes[i, : len(b)] = torch.tensor(b)
            out_ignore[i, : len(g)] = torch.tensor(g)
            mask[i, : len(b)] = True
    return {"boxes": out_boxes, "ignore": out_ignore, "mask": mask}


def _raw(batch: int, num_anchors: int, fill: float = 0.0) -> torch.Tensor:
    return torch.full((batch, num_anchors * 5, GRID, GRID), fill, dtype=torch.float64)


def test_perfect_prediction_gives_near_zero_loss() -> None:
    anchors = torch.tensor([[10.0, 14.0], [20.0, 30.0]])
    face = [40.0, 8.0, 60.0, 36.0]  # centre (50, 22) -> cell column 1, row 0; 20 x 28 -> anchor 1
    raw = _raw(1, 2, fill=0.0)
    raw[0, 4::5] = -30.0  # objectness of every prediction: "no face"
    a, row, col = 1, 0, 1
    raw[0, a * 5 + 0, row, col] = _logit(50 / 32 - 1)  # sigmoid(tx) = centre offset in the cell
    raw[0, a * 5 + 1, row, col] = _logit(22 / 32)
    raw[0, a * 5 + 2, row, col] = math.log(20 / 20)  # tw = log(w / anchor w)
    raw[0, a * 5 + 3, row, col] = math.log(28 / 30)
    raw[0, a * 5 + 4, row, col] = 30.0  # "face"
    terms = region_loss(raw, _targets([[face]], [[False]]), anchors, STRIDE)
    assert float(terms["num_pos"]) == 1
    assert float(terms["box"]) < 1e-12
    assert float(terms["obj"]) < 1e-12
    assert float(terms["noobj"]) < 1e-11
    assert float(terms["total"]) == pytest.approx(float(terms["box"] + terms["obj"] + terms["noobj"]))

    # The same prediction on the other anchor is not perfect: the assignment is by shape, and
    # anchor 1 now predicts sigmoid(0) = 0.5 offsets and tw = th = 0.
    wrong = raw.clone()
    wrong[0, 0:5] = raw[0, 5:10]
    wrong[0, 5:10] = raw[0, 0:5]
    expected = (2 - 20 * 28 / 64**2) * ((0.5 - 50 / 32 + 1) ** 2 + (0.5 - 22 / 32) ** 2 + math.log(28 / 30) ** 2)
    box = float(region_loss(wrong, _targets([[face]], [[False]]), anchors, STRIDE)["box"])
    assert box == pytest.approx(expected, rel=1e-9)


def test_hand_computed_single_anchor_case() -> None:
    # One anchor, 2 x 2 grid, batch of 2 (image 1 has no face: only padding).
    anchor = (30.0, 40.0)
    face = np.array([16.0, 6.0, 56.0, 54.0])  # centre (36, 30): cell column 1, row 0; 40 x 48
    rng = np.random.default_rng(0)
    raw_np = rng.normal(0, 1, size=(2, 5, GRID, GRID))
    # Cell (row 0, column 0) of image 0 predicts a box overlapping the face with IoU > 0.6:
    # its no-object term must be suppressed (ignore_thresh 0.6).
    raw_np[0, :4, 0, 0] = [_logit(0.95), _logit(0.9), math.log(40 / 30), math.log(48 / 40)]

    # ---- expected, by hand
    sig = _sigmoid(raw_np)
    cols, rows = np.meshgrid(np.arange(GRID), np.arange(GRID))  # [row, col]
    cx, cy = (cols + sig[:, 0]) * STRIDE, (rows + sig[:, 1]) * STRIDE  # (B, H, W)
    w, h = anchor[0] * np.exp(raw_np[:, 2]), anchor[1] * np.exp(raw_np[:, 3])
    pred = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], -1)  # (B, H, W, 4)
    suppressed = np.zeros((2, GRID, GRID), bool)
    for r in range(GRID):
        for c in range(GRID):
            suppressed[0, r, c] = _iou(pred[0, r, c], face) > 0.6
    assert suppressed[0, 0, 0] and suppressed.sum() == 1  # the case is built to test suppression

    gw, gh = 40.0, 48.0
    ox, oy = 36 / 32 - 1, 30 / 32 - 0  # centre offset in cell (row 0, column 1)
    t = raw_np[0, :, 0, 1]
    box = (2 - gw * gh / (64 * 64)) * (
        (sig[0, 0, 0, 1] - ox) ** 2
        + (sig[0, 1, 0, 1] - oy) ** 2
        + (t[2] - math.log(gw / anchor[0])) ** 2
        + (t[3] - math.log(gh / anchor[1])) ** 2
    )
    obj = math.log1p(math.exp(-t[4]))  # BCE(logit, 1)
    negative = ~suppressed
    negative[0, 0, 1] = False  # the matched prediction
    noobj = float(np.log1p(np.exp(raw_np[:, 4][negative])).sum())  # BCE(logit, 0)

    raw = torch.tensor(raw_np, requires_grad=True)
    terms = region_loss(raw, _targets([[face.tolist()], []], [[False], []]), torch.tensor([anchor]), STRIDE)
    values = {k: float(v.detach()) for k, v in terms.items()}
    assert values["box"] == pytest.approx(box / 2, rel=1e-9)
    assert values["obj"] == pytest.approx(obj / 2, rel=1e-9)
    assert values["noobj"] == pytest.approx(noobj / 2, rel=1e-9)
    assert values["total"] == pytest.approx((box + obj + noobj) / 2, rel=1e-9)
    assert values["num_pos"] == 1

    # Gradients: the suppressed prediction gets none; d noobj / d logit = sigmoid(logit) / B.
    terms["total"].backward()
    grad = raw.grad.numpy()
    np.testing.assert_array_equal(grad[0, :, 0, 0], 0.0)
    np.testing.assert_allclose(grad[1, 4], sig[1, 4] / 2, rtol=1e-9)
    np.testing.assert_allclose(grad[0, 4, 0, 1], (sig[0, 4, 0, 1] - 1) / 2, rtol=1e-9)
    # d box / d tw = 2 * weight * (tw - log(w / aw)) / B
    weight = 2 - gw * gh / (64 * 64)
    assert grad[0, 2, 0, 1] == pytest.approx(weight * (t[2] - math.log(gw / anchor[0])), rel=1e-9)

    # object_scale / coord_scale / noobject_scale multiply their terms.
    scaled = region_loss(
        raw.detach(),
        _targets([[face.tolist()], []], [[False], []]),
        torch.tensor([anchor]),
        STRIDE,
        RegionLossConfig(coord_scale=2.0, object_scale=3.0, noobject_scale=0.5),
    )
    assert float(scaled["box"]) == pytest.approx(box, rel=1e-9)
    assert float(scaled["obj"]) == pytest.approx(1.5 * obj, rel=1e-9)
    assert float(scaled["noobj"]) == pytest.approx(noobj / 4, rel=1e-9)


@pytest.mark.parametrize("padding", [0, 3])
def test_empty_targets_give_finite_loss_and_gradients(padding: int) -> None:
    rng = np.random.default_rng(1)
    raw_np = rng.normal(0, 3, size=(2, 10, GRID, GRID))
    raw = torch.tensor(raw_np, requires_grad=True)
    targets = {
        "boxes": torch.zeros(2, padding, 4),
        "ignore": torch.zeros(2, padding, dtype=torch.bool),
        "mask": torch.zeros(2, padding, dtype=torch.bool),
    }
    terms = region_loss(raw, targets, torch.tensor([[10.0, 12.0], [30.0, 40.0]]), STRIDE)
    values = {k: float(v.detach()) for k, v in terms.items()}
    assert all(math.isfinite(v) for v in values.values())
    assert values["box"] == 0.0 and values["obj"] == 0.0 and values["num_pos"] == 0
    expected = float(np.log1p(np.exp(raw_np[:, 4::5])).sum()) / 2  # every prediction is a negative
    assert values["noobj"] == pytest.approx(expected, rel=1e-9)
    terms["total"].backward()
    assert torch.isfinite(raw.grad).all()
    np.testing.assert_allclose(raw.grad[:, 4::5].numpy(), _sigmoid(raw_np[:, 4::5]) / 2, rtol=1e-9)
    np.testing.assert_array_equal(raw.grad[:, 0:4].numpy(), 0.0)  # no coordinate gradient


def test_ignore_regions_suppress_no_object_term() -> None:
    # Tiny predicted boxes (tw = th = -4) at the cell centres (16, 16), (48, 16), (16, 48), (48, 48).
    raw = _raw(1, 1, fill=0.0)
    raw[0, 2:4] = -4.0
    raw[0, 4] = 2.0
    raw.requires_grad_(True)
    per_prediction = math.log1p(math.exp(2.0))
    anchors = torch.tensor([[10.0, 10.0]])

    free = region_loss(raw.detach(), _targets([[]], [[]]), anchors, STRIDE)
    assert float(free["noobj"]) == pytest.approx(4 * per_prediction)

    # An ignore region covering the top-left cell centre: that prediction lies inside it (and
    # the cell holds the region's centre); the three others still count as negatives.
    region = [[0.0, 0.0, 40.0, 40.0]]
    terms = region_loss(raw, _targets([region], [[True]]), anchors, STRIDE)
    values = {k: float(v.detach()) for k, v in terms.items()}
    assert values["noobj"] == pytest.approx(3 * per_prediction)
    # An ignore region is not a face to learn.
    assert values["num_pos"] == 0 and values["box"] == 0 and values["obj"] == 0
    terms["total"].backward()
    assert float(raw.grad[0, 4, 0, 0]) == 0.0
    assert float(raw.grad[0, 4, 1, 1]) == pytest.approx(1 / (1 + math.exp(-2.0)))

    # A small ignore region whose centre lies in the bottom-right cell, away from that cell's
    # predicted box: the "cell holds an ignore centre" rule suppresses all of its anchors.
    small = [[34.0, 34.0, 38.0, 38.0]]
    terms = region_loss(raw.detach(), _targets([small], [[True]]), anchors, STRIDE)
    assert float(terms["noobj"]) == pytest.approx(3 * per_prediction)

    # The same box as a real face instead: it becomes a positive, not an ignore region.
    terms = region_loss(raw.detach(), _targets([region], [[False]]), anchors, STRIDE)
    assert float(terms["num_pos"]) == 1 and float(terms["obj"]) > 0


def test_channel_mismatch_raises() -> None:
    with pytest.raises(ValueError, match="expected 2\\*5"):
        region_loss(_raw(1, 1), _targets([[]], [[]]), torch.tensor([[1.0, 1.0], [2.0, 2.0]]), STRIDE)


def test_multi_anchor_positives_follow_the_shape_iou_threshold() -> None:
    # A 20 x 20 face between two square anchors: shape IoU 256/400 = 0.64 with the 16 x 16 anchor
    # (its best match) and 400/900 = 0.444 with the 30 x 30 one; 64/400 = 0.16 with the 8 x 8 one.
    anchors = torch.tensor([[8.0, 8.0], [16.0, 16.0], [30.0, 30.0]])
    face = [6.0, 6.0, 26.0, 26.0]  # centre (16, 16): cell (0, 0), offset 0.5
    raw = _raw(1, 3, fill=0.0)  # every prediction: offsets 0.5, tw = th = 0, objectness 0.5
    targets = _targets([[face]], [[False]])
    single = region_loss(raw, targets, anchors, STRIDE)
    multi = region_loss(raw, targets, anchors, STRIDE, RegionLossConfig(multi_anchor_iou=0.4))
    assert float(single["num_pos"]) == 1 and float(multi["num_pos"]) == 2
    weight = 2 - 20 * 20 / 64**2
    # centre offsets are exact (0.5); only tw, th = 0 vs log(20 / anchor) contribute
    expected_single = weight * 2 * math.log(20 / 16) ** 2
    expected_multi = expected_single + weight * 2 * math.log(20 / 30) ** 2
    assert float(single["box"]) == pytest.approx(expected_single, rel=1e-9)
    assert float(multi["box"]) == pytest.approx(expected_multi, rel=1e-9)
    # objectness: each positive is BCE(logit 0, target 1) = log 2; the rest of the 12 predictions
    # are negatives (BCE(0, 0) = log 2) unless their decoded box overlaps the face by IoU > 0.6.
    assert float(multi["obj"]) == pytest.approx(2 * math.log(2), rel=1e-9)
    assert float(single["obj"]) == pytest.approx(math.log(2), rel=1e-9)
    # A threshold no anchor reaches keeps only the best one.
    none = region_loss(raw, targets, anchors, STRIDE, RegionLossConfig(multi_anchor_iou=0.99))
    assert float(none["num_pos"]) == 1 and float(none["box"]) == pytest.approx(expected_single, rel=1e-9)


def test_rescore_targets_the_iou_of_the_decoded_box() -> None:
    anchors = torch.tensor([[20.0, 20.0]])
    face = [6.0, 6.0, 26.0, 26.0]  # centre (16, 16) in cell (0, 0)
    raw = _raw(1, 1, fill=0.0)
    raw[0, 2, 0, 0] = math.log(1.5)  # predicted 30 x 20 box centred on the face: IoU 400 / 600
    raw[0, 4, 0, 0] = _logit(0.3)
    terms = region_loss(raw, _targets([[face]], [[False]]), anchors, STRIDE, RegionLossConfig(rescore=True))
    target = 400 / 600
    expected = -(target * math.log(0.3) + (1 - target) * math.log(0.7))
    assert float(terms["obj"]) == pytest.approx(expected, rel=1e-9)
