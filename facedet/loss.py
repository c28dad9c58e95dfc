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
    device = raw.device
    anchors = anchors.to(device=device, dtype=raw.dtype)
    img_w, img_h = width * stride, height * stride
    p = raw.view(batch, num_anchors, 5, height, width).permute(0, 1, 3, 4, 2)  # (B, A, H, W, 5)
    sig_xy = torch.sigmoid(p[..., :2])
    twh = p[..., 2:4]
    logit = p[..., 4]  # (B, A, H, W)

    # Decoded predictions in pixels (no gradient: used for IoU-based suppression and rescore).
    with torch.no_grad():
        gy, gx = torch.meshgrid(
            torch.arange(height, device=device, dtype=raw.dtype),
            torch.arange(width, device=device, dtype=raw.dtype),
            indexing="ij",
        )
        cx = (gx + sig_xy[..., 0]) * stride
        cy = (gy + sig_xy[..., 1]) * stride
        wh = anchors.view(1, num_anchors, 1, 1, 2) * torch.exp(twh.clamp(-8, 8))
        pred = torch.stack([cx - wh[..., 0] / 2, cy - wh[..., 1] / 2, cx + wh[..., 0] / 2, cy + wh[..., 1] / 2], -1)
        pred = pred.view(batch, -1, 4)  # (B, A*H*W, 4) ordered anchor, row, column

    boxes = targets["boxes"].to(device=device, dtype=raw.dtype)  # (B, K, 4)
    mask = targets["mask"].to(device)
    ignore = targets["ignore"].to(device) & mask
    positive = mask & ~targets["ignore"].to(device)  # faces to learn

    # ---- no-object suppression: IoU with any face or ignore region, closeness to ignore regions
    noobj = torch.ones(batch, num_anchors, height, width, dtype=torch.bool, device=device)
    if boxes.shape[1] > 0:
        with torch.no_grad():
            iou = box_iou(pred, boxes).masked_fill(~mask[:, None, :], 0)  # (B, AHW, K)
            covered = iou.max(-1).values > config.ignore_thresh
            inside = _intersection_over_first(pred, boxes).masked_fill(~ignore[:, None, :], 0).max(-1).values > 0.5
            noobj &= ~(covered | inside).view(batch, num_anchors, height, width)
            # all anchors of a cell holding an ignore region's centre
            b_idx, k_idx = ignore.nonzero(as_tuple=True)
            if b_idx.numel():
                centre = (boxes[b_idx, k_idx, :2] + boxes[b_idx, k_idx, 2:]) / 2
                ci = (centre[:, 0] / stride).long().clamp(0, width - 1)
                cj = (centre[:, 1] / stride).long().clamp(0, height - 1)
                noobj[b_idx, :, cj, ci] = False

    # ---- assignment of faces to (cell, best-shape anchor)
    b_idx, k_idx = positive.nonzero(as_tuple=True)  # (P,) each
    box_loss = raw.new_zeros(())
    obj_loss = raw.new_zeros(())
    num_pos = b_idx.numel()
    if num_pos:
        gt = boxes[b_idx, k_idx]  # (P, 4)
        # Per-face loss weight and objectness scale (teacher-only faces: distill weight, teacher score).
        face_weight = _per_face(targets, "weight", b_idx, k_idx, raw)
        face_obj = _per_face(targets, "obj_target", b_idx, k_idx, raw)
        gw = (gt[:, 2] - gt[:, 0]).clamp(min=1e-3)
        gh = (gt[:, 3] - gt[:, 1]).clamp(min=1e-3)
        gcx = (gt[:, 0] + gt[:, 2]) / 2
        gcy = (gt[:, 1] + gt[:, 3]) / 2
        ci = (gcx / stride).floor().clamp(0, width - 1)
        cj = (gcy / stride).floor().clamp(0, height - 1)
        inter = torch.minimum(gw[:, None], anchors[None, :, 0]) * torch.minimum(gh[:, None], anchors[None, :, 1])
        shape_iou = inter / (gw[:, None] * gh[:, None] + anchors.prod(-1)[None, :] - inter)  # (P, A)
        # Positive anchors of each face: its best shape match, plus any above multi_anchor_iou.
        chosen = F.one_hot(shape_iou.argmax(-1), num_anchors).bool()
        if config.multi_anchor_iou is not None:
            chosen |= shape_iou >= config.multi_anchor_iou
        pair, a_idx = chosen.nonzero(as_tuple=True)  # (P',) face index and anchor, face-major order
        b_idx, gt, gw, gh, gcx, gcy, ci, cj = (t[pair] for t in (b_idx, gt, gw, gh, gcx, gcy, ci, cj))
        face_weight, face_obj = face_weight[pair], face_obj[pair]
        num_pos = pair.numel()
        ci_l, cj_l = ci.long(), cj.long()
        # Later faces win a shared (cell, anchor): keep the last occurrence of each slot.
        slot = ((b_idx * num_anchors + a_idx) * height + cj_l) * width + ci_l
        order = torch.arange(num_pos, device=device)
        last = torch.full((batch * num_anchors * height * width,), -1, dtype=torch.long, device=device)
        last.scatter_reduce_(0, slot, order, reduce="amax")
        keep = last[slot] == order
        b_idx, a_idx, cj_l, ci_l = b_idx[keep], a_idx[keep], cj_l[keep], ci_l[keep]
        gw, gh, gcx, gcy, gt = gw[keep], gh[keep], gcx[keep], gcy[keep], gt[keep]
        ci, cj = ci[keep], cj[keep]
        face_weight, face_obj = face_weight[keep], face_obj[keep]
        num_pos = int(keep.sum())

        pxy = sig_xy[b_idx, a_idx, cj_l, ci_l]  # (P, 2)
        pwh = twh[b_idx, a_idx, cj_l, ci_l]  # (P, 2)
        txy = torch.stack([gcx / stride - ci, gcy / stride - cj], -1)
        twh_t = torch.stack([torch.log(gw / anchors[a_idx, 0]), torch.log(gh / anchors[a_idx, 1])], -1)
        weight = face_weight * config.coord_scale * (2.0 - (gw * gh) / (img_w * img_h))  # (P,)
        per_box = ((pxy - txy) ** 2).sum(-1) + ((pwh - twh_t) ** 2).sum(-1)
        box_loss = (weight * per_box).sum()

        pos_logit = logit[b_idx, a_idx, cj_l, ci_l]
        if config.rescore:
            with torch.no_grad():
                flat = (a_idx * height + cj_l) * width + ci_l
                obj_target = box_iou(pred[b_idx, flat][:, None, :], gt[:, None, :])[:, 0, 0]  # (P,)
        else:
            obj_target = torch.ones_like(pos_logit)
        obj_bce = F.binary_cross_entropy_with_logits(pos_logit, obj_target * face_obj, reduction="none")
        obj_loss = config.object_scale * (face_weight * obj_bce).sum()
        noobj[b_idx, a_idx, cj_l, ci_l] = False

    noobj_loss = config.noobject_scale * F.binary_cross_entropy_with_logits(
        logit[noobj], torch.zeros_like(logit[noobj]), reduction="sum"
    )
    terms = {"box": box_loss / batch, "obj": obj_loss / batch, "noobj": noobj_loss / batch}
    terms["total"] = terms["box"] + terms["obj"] + terms["noobj"]
    terms["num_pos"] = torch.tensor(float(num_pos))
    return terms
