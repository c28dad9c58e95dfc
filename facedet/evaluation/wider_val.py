"""AP at IoU 0.5 on WIDER-style ground truth through pycocotools (one class: face).

Invalid faces are passed as COCO ``iscrowd`` regions: a detection on them is neither a true
nor a false positive, and missing them costs nothing. ``min_size`` additionally turns faces
smaller than that (either side, pixels) into such ignore regions, which gives the AP of the
faces a model can be expected to find at its input size.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray


def ap50(
    detections: Sequence[tuple[NDArray[np.floating], NDArray[np.floating]]],
    ground_truth: Sequence[tuple[NDArray[np.floating], NDArray[np.bool_]]],
    image_sizes: Sequence[tuple[int, int]] | None = None,
    min_size: float = 0.0,
    max_detections: int = 1000,
) -> float:
    """Average precision at IoU 0.5 (COCO 101-point interpolation), in [0, 1].

    Args:
        detections: per image ``(boxes (N, 4) xyxy, scores (N,))`` in image pixels.
        ground_truth: per image ``(boxes (K, 4) xyxy, ignore (K,))``.
        image_sizes: per image (height, width); only stored in the COCO image records.
        min_size: faces with width or height below this are ignore regions.
        max_detections: detections kept per image (highest scores).

    Returns:
        AP50, or 0.0 when there are no detections (or -1.0 when there is no scorable face).
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    if len(detections) != len(ground_truth):
        raise ValueError(f"{len(detections)} detection lists for {len(ground_truth)} images")
    images, annotations, results = [], [], []
    for image_id, ((gt_boxes, gt_ignore), (det_boxes, det_scores)) in enumerate(
        zip(ground_truth, detections, strict=True), start=1
    ):
        height, width = image_sizes[image_id - 1] if image_sizes is not None else (0, 0)
        images.append({"id": image_id, "height": int(height), "width": int(width)})
        gt_boxes = np.asarray(gt_boxes, np.float64).reshape(-1, 4)
        for box, flag in zip(gt_boxes, np.asarray(gt_ignore, bool).reshape(-1), strict=True):
            w, h = float(box[2] - box[0]), float(box[3] - box[1])
            crowd = bool(flag) or min(w, h) < min_size
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": 1,
                    "bbox": [float(box[0]), float(box[1]), w, h],
                    "area": w * h,
                    "iscrowd": int(crowd),
                    "ignore": int(crowd),
                }
            )
        det_boxes = np.asarray(det_boxes, np.float64).reshape(-1, 4)
        det_scores = np.asarray(det_scores, np.float64).reshape(-1)
        for i in np.argsort(-det_scores, kind="stable")[:max_detections]:
            x1, y1, x2, y2 = det_boxes[i]
            bbox = [x1, y1, x2 - x1, y2 - y1]
            results.append({"image_id": image_id, "category_id": 1, "bbox": bbox, "score": float(det_scores[i])})
    if not any(a["iscrowd"] == 0 for a in annotations):
        return -1.0
    if not results:
        return 0.0
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
        coco_gt = COCO()
        coco_gt.dataset = {"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "face"}]}
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(results)
        evaluator = COCOeval(coco_gt, coco_dt, iouType="bbox")
        evaluator.params.iouThrs = np.array([0.5])
        evaluator.params.maxDets = [max_detections]
        evaluator.params.areaRng = [[0.0, 1e10]]
        evaluator.params.areaRngLbl = ["all"]
        evaluator.evaluate()
        evaluator.accumulate()
    precision = evaluator.eval["precision"][0, :, 0, 0, 0]  # (101 recall points,)
    valid = precision > -1
    return float(precision[valid].mean()) if valid.any() else 0.0
