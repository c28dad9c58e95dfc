"""YOLOv2 region loss for one class (YOLO9000, Redmon & Farhadi 2017; darknet region_layer.c), vectorized.

For a raw head map (B, A*5, H, W) with channel ``a*5 + k`` = tx, ty, tw, th, objectness logit of
anchor a (the layout ``facedet.anchors.decode_raw`` reads):

- **Assignment.** Each ground-truth face (not ignore) goes to the cell holding its centre and, in
  that cell, to the anchor with the best shape-only IoU (darknet ``bias_match``), and with
  ``multi_anchor_iou`` also to every other anchor whose shape IoU reaches it. When two faces pick
  the same cell and anchor, the later one wins (as in darknet).
- **box** (matched anchors): ``coord_scale * (2 - w*h/S^2) * [(sig(tx) - ox)^2 + (sig(ty) - oy)^2
  + (tw - log(w/aw))^2 + (th - log(h/ah))^2]``, where (ox, oy) is the centre's offset in its
  cell; the (2 - area) factor weighs small faces up to twice as much as image-sized ones.
- **obj** (matched anchors): ``object_scale * BCE(logit, target)``, target 1, or the IoU of the
  decoded prediction with its face when ``rescore`` (darknet rescore=1), times the face's
  ``obj_target`` when the batch has one (a teacher's score for faces only the teacher found).
- Optional per-face ``weight`` (B, K) multiplies both the box and obj terms of that face
  (``distill_weight`` for teacher-only faces, 1 for annotated ones).
- **noobj** (every other prediction): ``noobject_scale * BCE(logit, 0)``, suppressed where the
  decoded box overlaps any face or ignore region with IoU > ``ignore_thresh`` (0.6), and near
  ignore regions: where the prediction lies mostly inside one (intersection / own area > 0.5)
  or the cell holds an ignore region's centre.

Choice: objectness uses binary cross-entropy on logits instead of darknet's squared error on the
sigmoid: the same fixed point, better gradients for confident mistakes, and numerically safe.
The anchor-prior warm-up term of darknet (first 12,800 images) is omitted.
Every term is summed over predictions and divided by the batch size.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass(frozen=True)
class RegionLossConfig:
    """Scales and thresholds (darknet yolov2-tiny-voc.cfg defaults except where noted)."""

    coord_scale: float = 1.0
    object_scale: float = 1.0  # darknet 5 with squared error; BCE's gradient is already larger
    noobject_scale: float = 1.0
    ignore_thresh: float = 0.6
    rescore: bool = False  # target 1 (stable from scratch); darknet uses IoU (rescore=1)
    # None: one positive anchor per face (darknet). A value: every anchor of the face's cell whose
    # shape IoU with the face reaches it is a positive too (faces between two anchor sizes train both).
    multi_anchor_iou: float | None = None


def box_iou(a: Tensor, b: Tensor) -> Tensor:
    """Batched IoU: a (B, N, 4), b (B, K, 4) xyxy -> (B, N, K)."""
    lt = torch.maximum(a[:, :, None, :2], b[:, None, :, :2])
    rb = torch.minimum(a[:, :, None, 2:], b[:, None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    area_a = (a[..., 2:] - a[..., :2]).clamp(min=0).prod(-1)  # (B, N)
    area_b = (b[..., 2:] - b[..., :2]).clamp(min=0).prod(-1)  # (B, K)
    return inter / (area_a[:, :, None] + area_b[:, None, :] - inter).clamp(min=1e-9)


def _intersection_over_first(a: Tensor, b: Tensor) -> Tensor:
    """(B, N, K) intersection area / area of a's box."""
    lt = torch.maximum(a[:, :, None, :2], b[:, None, :, :2])
    rb = torch.minimum(a[:, :, None, 2:], b[:, None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    area_a = (a[..., 2:] - a[..., :2]).clamp(min=0).prod(-1)
    return inter / area_a[:, :, None].clamp(min=1e-9)


def _per_face(targets: dict[str, Tensor], key: str, b_idx: Tensor, k_idx: Tensor, like: Tensor) -> Tensor:
    """(P,) values of an optional per-box target (1 where the batch has none)."""
    if key not in targets:
        return like.new_ones(b_idx.shape[0])
    return targets[key].to(device=like.device, dtype=like.dtype)[b_idx, k_idx]


class _Positives(NamedTuple):
    """The (image, anchor, row, column) slots that learn a face, with their regression targets."""

    b: Tensor  # (P,) image index
    a: Tensor  # (P,) anchor index
    row: Tensor  # (P,) long
    col: Tensor  # (P,) long
    gt: Tensor  # (P, 4) the face box, xyxy pixels
    txy: Tensor  # (P, 2) centre offset in the cell
    twh: Tensor  # (P, 2) log(size / anchor)
    area: Tensor  # (P,) face area, pixels^2
    weight: Tensor  # (P,) per-face loss weight
    obj_scale: Tensor  # (P,) per-face objectness target scale


def _decode(raw: Tensor, anchors: Tensor, stride: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(sigmoid(txy) (B, A, H, W, 2), twh (B, A, H, W, 2), logit (B, A, H, W), detached decoded
    boxes (B, A*H*W, 4) xyxy pixels ordered anchor, row, column)."""
    batch, _, height, width = raw.shape
    num_anchors = anchors.shape[0]
    p = raw.view(batch, num_anchors, 5, height, width).permute(0, 1, 3, 4, 2)  # (B, A, H, W, 5)
    sig_xy = torch.sigmoid(p[..., :2])
    twh = p[..., 2:4]
    with torch.no_grad():  # used for IoU-based suppression and rescore only
        gy, gx = torch.meshgrid(
            torch.arange(height, device=raw.device, dtype=raw.dtype),
            torch.arange(width, device=raw.device, dtype=raw.dtype),
            indexing="ij",
        )
        cx = (gx + sig_xy[..., 0]) * stride
        cy = (gy + sig_xy[..., 1]) * stride
        wh = anchors.view(1, num_anchors, 1, 1, 2) * torch.exp(twh.clamp(-8, 8))
        pred = torch.stack([cx - wh[..., 0] / 2, cy - wh[..., 1] / 2, cx + wh[..., 0] / 2, cy + wh[..., 1] / 2], -1)
    return sig_xy, twh, p[..., 4], pred.view(batch, -1, 4)


@torch.no_grad()
def _noobj_mask(
    pred: Tensor, targets: dict[str, Tensor], grid: tuple[int, int, int, int], stride: int, config: RegionLossConfig
) -> Tensor:
    """(B, A, H, W) bool: predictions the no-object term applies to (not near any face or ignore region)."""
    batch, num_anchors, height, width = grid
    noobj = torch.ones(grid, dtype=torch.bool, device=pred.device)
    boxes = targets["boxes"].to(device=pred.device, dtype=pred.dtype)
    mask = targets["mask"].to(pred.device)
    ignore = targets["ignore"].to(pred.device) & mask
    if boxes.shape[1] == 0:
        return noobj
    iou = box_iou(pred, boxes).masked_fill(~mask[:, None, :], 0)  # (B, AHW, K)
    covered = iou.max(-1).values > config.ignore_thresh
    inside = _intersection_over_first(pred, boxes).masked_fill(~ignore[:, None, :], 0).max(-1).values > 0.5
    noobj &= ~(covered | inside).view(grid)
    # all anchors of a cell holding an ignore region's centre
    b_idx, k_idx = ignore.nonzero(as_tuple=True)
    if b_idx.numel():
        centre = (boxes[b_idx, k_idx, :2] + boxes[b_idx, k_idx, 2:]) / 2
        ci = (centre[:, 0] / stride).long().clamp(0, width - 1)
        cj = (centre[:, 1] / stride).long().clamp(0, height - 1)
        noobj[b_idx, :, cj, ci] = False
    return noobj


def _assign(
    targets: dict[str, Tensor], anchors: Tensor, grid: tuple[int, int, int, int], stride: int, config: RegionLossConfig
) -> _Positives | None:
    """Faces -> (cell of the centre, best-shape anchor and any at ``multi_anchor_iou``); a later
    face wins a shared slot. None when the batch has no face to learn."""
    batch, num_anchors, height, width = grid
    like = anchors
    boxes = targets["boxes"].to(device=like.device, dtype=like.dtype)
    positive = targets["mask"].to(like.device) & ~targets["ignore"].to(like.device)
    b_idx, k_idx = positive.nonzero(as_tuple=True)  # (P,) each
    if not b_idx.numel():
        return None
    gt = boxes[b_idx, k_idx]  # (P, 4)
    # Per-face loss weight and objectness scale (teacher-only faces: distill weight, teacher score).
    face_weight = _per_face(targets, "weight", b_idx, k_idx, like)
    face_obj = _per_face(targets, "obj_target", b_idx, k_idx, like)
    gw = (gt[:, 2] - gt[:, 0]).clamp(min=1e-3)
    gh = (gt[:, 3] - gt[:, 1]).clamp(min=1e-3)
    inter = torch.minimum(gw[:, None], anchors[None, :, 0]) * torch.minimum(gh[:, None], anchors[None, :, 1])
    shape_iou = inter / (gw[:, None] * gh[:, None] + anchors.prod(-1)[None, :] - inter)  # (P, A)
    chosen = F.one_hot(shape_iou.argmax(-1), num_anchors).bool()
    if config.multi_anchor_iou is not None:
        chosen |= shape_iou >= config.multi_anchor_iou
    pair, a_idx = chosen.nonzero(as_tuple=True)  # (P',) face index and anchor, face-major order
    b_idx, gt, gw, gh, face_weight, face_obj = (t[pair] for t in (b_idx, gt, gw, gh, face_weight, face_obj))
    gcx, gcy = (gt[:, 0] + gt[:, 2]) / 2, (gt[:, 1] + gt[:, 3]) / 2
    ci = (gcx / stride).floor().clamp(0, width - 1)
    cj = (gcy / stride).floor().clamp(0, height - 1)
    # Later faces win a shared (cell, anchor): keep the last occurrence of each slot.
    slot = ((b_idx * num_anchors + a_idx) * height + cj.long()) * width + ci.long()
    order = torch.arange(pair.numel(), device=like.device)
    last = torch.full((batch * num_anchors * height * width,), -1, dtype=torch.long, device=like.device)
    last.scatter_reduce_(0, slot, order, reduce="amax")
    keep = last[slot] == order
    b_idx, a_idx, gt, gw, gh, gcx, gcy, ci, cj, face_weight, face_obj = (
        t[keep] for t in (b_idx, a_idx, gt, gw, gh, gcx, gcy, ci, cj, face_weight, face_obj)
    )
    txy = torch.stack([gcx / stride - ci, gcy / stride - cj], -1)
    twh = torch.stack([torch.log(gw / anchors[a_idx, 0]), torch.log(gh / anchors[a_idx, 1])], -1)
    return _Positives(b_idx, a_idx, cj.long(), ci.long(), gt, txy, twh, gw * gh, face_weight, face_obj)


def region_loss(
    raw: Tensor,
    targets: dict[str, Tensor],
    anchors: Tensor,
    stride: int,
    config: RegionLossConfig = RegionLossConfig(),
) -> dict[str, Tensor]:
    """YOLOv2 region loss terms.

    Args:
        raw: (B, A*5, H, W) head output.
        targets: ``boxes`` float (B, K, 4) xyxy network pixels, ``ignore`` bool (B, K), ``mask``
            bool (B, K) real (non-padding) entries, optional ``weight`` and ``obj_target`` float
            (B, K) (``facedet.data.dataset.collate``).
        anchors: (A, 2) anchor width, height in network pixels.
        stride: grid cell size in pixels.
        config: scales and thresholds.

    Returns:
        ``{"box", "obj", "noobj", "total"}`` scalar tensors (sums over predictions / batch size),
        plus ``"num_pos"`` (a detached count, for logging).
    """
    batch, channels, height, width = raw.shape
    num_anchors = anchors.shape[0]
    if channels != num_anchors * 5:
        raise ValueError(f"head has {channels} channels, expected {num_anchors}*5")
    anchors = anchors.to(device=raw.device, dtype=raw.dtype)
    grid = (batch, num_anchors, height, width)
    sig_xy, twh, logit, pred = _decode(raw, anchors, stride)
    noobj = _noobj_mask(pred, targets, grid, stride, config)
    pos = _assign(targets, anchors, grid, stride, config)
    box_loss = obj_loss = raw.new_zeros(())
    if pos is not None:
        slot = (pos.b, pos.a, pos.row, pos.col)
        area_weight = 2.0 - pos.area / (width * stride * height * stride)  # small faces count up to 2x
        per_box = ((sig_xy[slot] - pos.txy) ** 2).sum(-1) + ((twh[slot] - pos.twh) ** 2).sum(-1)
        box_loss = (pos.weight * config.coord_scale * area_weight * per_box).sum()
        if config.rescore:
            with torch.no_grad():
                flat = (pos.a * height + pos.row) * width + pos.col
                obj_target = box_iou(pred[pos.b, flat][:, None, :], pos.gt[:, None, :])[:, 0, 0]  # (P,)
        else:
            obj_target = torch.ones_like(pos.weight)
        obj_bce = F.binary_cross_entropy_with_logits(logit[slot], obj_target * pos.obj_scale, reduction="none")
        obj_loss = config.object_scale * (pos.weight * obj_bce).sum()
        noobj[slot] = False
    noobj_loss = config.noobject_scale * F.binary_cross_entropy_with_logits(
        logit[noobj], torch.zeros_like(logit[noobj]), reduction="sum"
    )
    terms = {"box": box_loss / batch, "obj": obj_loss / batch, "noobj": noobj_loss / batch}
    terms["total"] = terms["box"] + terms["obj"] + terms["noobj"]
    terms["num_pos"] = torch.tensor(float(0 if pos is None else pos.b.numel()))
    return terms
