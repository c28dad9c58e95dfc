"""Anchor priors and YOLOv2 decoding: raw head output -> face boxes. Torch-free, numpy only.

This is the only decoding in the project: the float torch model, the fake-quantized torch model
and the integer engine all hand their raw head output to ``decode`` (then ``boxes.nms``), so
every model is scored by the same post-processing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from facedet.boxes import Letterbox, nms
from facedet.detections import Detections


@dataclass(frozen=True)
class PostProcess:
    """Score threshold, NMS IoU and the cap on detections per image."""

    score_threshold: float = 0.05
    nms_iou: float = 0.4
    max_detections: int = 200


def _sigmoid(x: NDArray[np.float32]) -> NDArray[np.float32]:
    # Clipped so exp never overflows in float32 (|x| <= 80 -> exp(80) ~ 5.5e34).
    return (1.0 / (1.0 + np.exp(-np.clip(x, -80, 80)))).astype(np.float32)


def decode_raw(
    raw: NDArray[np.float32], anchors: NDArray[np.floating] | tuple[tuple[float, float], ...], stride: int
) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """Turn a raw head map into boxes and scores in network-input pixels (no threshold, no NMS).

    Args:
        raw: (A*5, H, W) head output; channel ``a*5 + k`` holds tx, ty, tw, th, objectness
            logit (k = 0..4) of anchor a.
        anchors: (A, 2) anchor width, height in network-input pixels.
        stride: grid cell size in pixels.

    Returns:
        boxes (H*W*A, 4) xyxy and scores (H*W*A,), ordered by row, column, anchor.
        ``x = (col + sigmoid(tx)) * stride``, ``w = anchor_w * exp(tw)`` (YOLOv2).
    """
    anchors = np.asarray(anchors, np.float32).reshape(-1, 2)
    num_anchors = anchors.shape[0]
    channels, height, width = raw.shape
    if channels != num_anchors * 5:
        raise ValueError(f"head has {channels} channels, expected {num_anchors}*5")
    t = raw.reshape(num_anchors, 5, height, width).transpose(2, 3, 0, 1)  # (H, W, A, 5)
    cols = np.arange(width, dtype=np.float32)[None, :, None]
    rows = np.arange(height, dtype=np.float32)[:, None, None]
    cx = (cols + _sigmoid(t[..., 0])) * stride
    cy = (rows + _sigmoid(t[..., 1])) * stride
    # exp clipped at e^8 ~ 3000x the anchor: beyond any real face, and never inf.
    bw = anchors[:, 0] * np.exp(np.clip(t[..., 2], -8, 8))
    bh = anchors[:, 1] * np.exp(np.clip(t[..., 3], -8, 8))
    boxes = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], axis=-1)
    scores = _sigmoid(t[..., 4])
    return boxes.reshape(-1, 4).astype(np.float32), scores.reshape(-1)


def decode(
    raw: NDArray[np.float32],
    anchors: NDArray[np.floating] | tuple[tuple[float, float], ...],
    stride: int,
    letterbox: Letterbox,
    post: PostProcess = PostProcess(),
) -> Detections:
    """Raw head map (A*5, H, W) -> thresholded, NMS-ed detections in original-image pixels."""
    boxes, scores = decode_raw(raw, anchors, stride)
    keep = np.flatnonzero(scores >= post.score_threshold)
    boxes, scores = boxes[keep], scores[keep]
    boxes = letterbox.to_original(boxes)
    valid = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    boxes, scores = boxes[valid], scores[valid]
    kept = nms(boxes, scores, post.nms_iou)[: post.max_detections]
    return Detections(boxes[kept].astype(np.float32), scores[kept].astype(np.float32))


def shape_iou(wh: NDArray[np.floating], anchors: NDArray[np.floating]) -> NDArray[np.float64]:
    """(N, K) IoU of boxes and anchors compared by shape only (both centred at the origin)."""
    wh = np.asarray(wh, np.float64)[:, None, :]
    anchors = np.asarray(anchors, np.float64)[None, :, :]
    inter = np.minimum(wh, anchors).prod(-1)
    iou: NDArray[np.float64] = inter / (wh.prod(-1) + anchors.prod(-1) - inter)
    return iou


def kmeans_anchors(wh: NDArray[np.floating], k: int, seed: int = 0, iterations: int = 300) -> NDArray[np.float64]:
    """k-means with distance 1 - shape IoU (YOLOv2 section 2), k-means++ seeding.

    Args:
        wh: (N, 2) box widths and heights (pixels at the network input).
        k: number of anchors.

    Returns:
        (k, 2) anchors sorted by area.
    """
    wh = np.asarray(wh, np.float64)
    if len(wh) < k:
        raise ValueError(f"need at least {k} boxes for {k} anchors, got {len(wh)}")
    rng = np.random.default_rng(seed)
    centres = [wh[rng.integers(len(wh))]]
    for _ in range(1, k):
        distance = 1 - shape_iou(wh, np.array(centres)).max(1)
        probabilities = distance**2 / max((distance**2).sum(), 1e-12)
        centres.append(wh[rng.choice(len(wh), p=probabilities)])
    centres_arr = np.array(centres)
    for _ in range(iterations):
        assignment = shape_iou(wh, centres_arr).argmax(1)
        updated = np.array(
            [np.median(wh[assignment == j], axis=0) if np.any(assignment == j) else centres_arr[j] for j in range(k)]
        )
        if np.allclose(updated, centres_arr):
            break
        centres_arr = updated
    return centres_arr[np.argsort(centres_arr.prod(1))]
