"""WIDER Face val AP50 and AP50:95 with pycocotools (COCO-style AP, one class "face").

Generic: takes per-image ground-truth arrays and ``Detections``, so the training loop and
``facedet eval wider`` call the same function. Faces flagged invalid (or otherwise ignored) become
COCO "crowd" regions: a detection on them is neither a true nor a false positive. ``min_size``
turns faces smaller than that (either side) into such regions too, which gives the AP of the faces
a model can be expected to find at its input size (the training log's ``ap50_ge16``). pycocotools
is imported inside the function (it is in the ``eval`` and ``train`` extras).
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from facedet.detections import Detections
from facedet.evaluation.bootstrap import ImageMatches

__all__ = ["wider_ap", "wider_evaluation", "wider_matches"]


def wider_ap(
    ground_truth: Sequence[tuple[NDArray[np.floating], NDArray[np.bool_]]],
    detections: Sequence[Detections],
    max_dets: int = 1000,
    min_size: float = 0.0,
) -> dict[str, float]:
    """COCO AP of face detections.

    Args:
        ground_truth: per image, (boxes float (M, 4) xyxy pixels, ignore bool (M,)); ignored faces
            (WIDER ``invalid``) are scored as crowd regions.
        detections: per image, the detector's ``Detections`` (same image order and frame).
        max_dets: detections kept per image (highest scores), COCO's third ``maxDets``.
        min_size: faces whose width or height (pixels) is below this are scored as crowd regions
            too (counted in ``ignored``); 0 keeps every non-ignored face.

    Returns:
        ``{"AP50": ..., "AP50:95": ..., "images": n, "faces": scored faces, "ignored": n}``; AP
        values in [0, 1] (0.0 when there is nothing to score).

    Raises:
        ValueError: the two sequences differ in length or an array has the wrong shape.
    """
    return wider_evaluation(ground_truth, detections, max_dets, min_size)[0]


def wider_matches(
    ground_truth: Sequence[tuple[NDArray[np.floating], NDArray[np.bool_]]],
    detections: Sequence[Detections],
    max_dets: int = 1000,
    min_size: float = 0.0,
) -> ImageMatches:
    """Each detection's outcome at IoU 0.5 as pycocotools matched it (same arguments as ``wider_ap``):
    what ``facedet.evaluation.bootstrap`` needs to recompute AP50 on resampled image sets."""
    return wider_evaluation(ground_truth, detections, max_dets, min_size)[1]


def wider_evaluation(
    ground_truth: Sequence[tuple[NDArray[np.floating], NDArray[np.bool_]]],
    detections: Sequence[Detections],
    max_dets: int = 1000,
    min_size: float = 0.0,
) -> tuple[dict[str, float], ImageMatches]:
    """``wider_ap`` and ``wider_matches`` of the same arguments from one pycocotools matching."""
    images, annotations, results, faces, ignored = _coco_inputs(ground_truth, detections, max_dets, min_size)
    out = {"AP50": 0.0, "AP50:95": 0.0, "images": float(len(images)), "faces": float(faces), "ignored": float(ignored)}
    ev = _coco_evaluated(images, annotations, results, max_dets)
    matches = _matches(ev, len(images), max_dets)
    if results and faces:
        out["AP50"], out["AP50:95"] = _coco_ap(ev)
    return out, matches


def _matches(ev: Any, num_images: int, max_dets: int) -> ImageMatches:
    """The per-detection outcomes of an evaluated ``COCOeval`` (IoU 0.5, area "all")."""
    # evalImgs is ordered category x area range x image; the first num_images are area "all".
    image, score, matched, scored = [], [], [], []
    faces = np.zeros(num_images, np.int64)
    for index, entry in enumerate(ev.evalImgs[:num_images]):
        if entry is None:  # no face and no detection in this image
            continue
        kept = len(entry["dtScores"][:max_dets])
        image.append(np.full(kept, index, np.int64))
        score.append(np.asarray(entry["dtScores"][:kept], np.float64))
        matched.append(np.asarray(entry["dtMatches"][0, :kept]) > 0)  # row 0: IoU threshold 0.5
        scored.append(~np.asarray(entry["dtIgnore"][0, :kept], bool))
        faces[index] = int(np.count_nonzero(~np.asarray(entry["gtIgnore"], bool)))
    return ImageMatches(
        image=_joined(image, np.int64),
        score=_joined(score, np.float64),
        true_positive=_joined(matched, np.bool_),
        scored=_joined(scored, np.bool_),
        faces=faces,
    )


def _joined(parts: list[NDArray[Any]], dtype: type[np.generic]) -> NDArray[Any]:
    return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype)


def _coco_inputs(
    ground_truth: Sequence[tuple[NDArray[np.floating], NDArray[np.bool_]]],
    detections: Sequence[Detections],
    max_dets: int,
    min_size: float,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]], int, int]:
    """(COCO images, annotations, results, scored faces, ignored faces) of one evaluation."""
    if len(ground_truth) != len(detections):
        raise ValueError(f"{len(ground_truth)} ground-truth images but {len(detections)} detection sets")
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    results: list[dict[str, Any]] = []
    faces = ignored = 0
    for image_id, ((boxes, ignore), dets) in enumerate(zip(ground_truth, detections, strict=True), start=1):
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        ignore = np.asarray(ignore, bool).reshape(-1)
        if ignore.shape[0] != boxes.shape[0]:
            raise ValueError(f"image {image_id}: {boxes.shape[0]} boxes but {ignore.shape[0]} ignore flags")
        # pycocotools wants a size per image; it is not used for bbox AP.
        extent = np.concatenate([boxes[:, 2:], dets.boxes[:, 2:]]).max(initial=1.0)
        images.append({"id": image_id, "width": int(np.ceil(extent)), "height": int(np.ceil(extent))})
        for box, ignored_face in zip(boxes, ignore, strict=True):
            w, h = float(box[2] - box[0]), float(box[3] - box[1])
            flag = bool(ignored_face) or min(w, h) < min_size
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": 1,
                    "bbox": [float(box[0]), float(box[1]), w, h],
                    "area": max(w, 0.0) * max(h, 0.0),
                    "iscrowd": int(flag),
                    "ignore": int(flag),
                }
            )
            faces += int(not flag)
            ignored += int(flag)
        order = np.argsort(-dets.scores, kind="stable")[:max_dets]
        for box, score in zip(dets.boxes[order], dets.scores[order], strict=True):
            results.append(
                {
                    "image_id": image_id,
                    "category_id": 1,
                    "score": float(score),
                    "bbox": [float(box[0]), float(box[1]), float(box[2] - box[0]), float(box[3] - box[1])],
                }
            )
    return images, annotations, results, faces, ignored


def _coco_ap(ev: Any) -> tuple[float, float]:
    """(AP50, AP50:95) of an evaluated ``COCOeval`` (accumulated and summarized here)."""
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
        ev.accumulate()
        ev.summarize()
    # stats[0] = AP@[.50:.95], stats[1] = AP@.50 (area "all", maxDets[2]); -1 means undefined.
    return max(float(ev.stats[1]), 0.0), max(float(ev.stats[0]), 0.0)


def _coco_evaluated(
    images: list[dict[str, Any]], annotations: list[dict[str, Any]], results: list[dict[str, Any]], max_dets: int
) -> Any:
    """A ``COCOeval`` that has matched the detections to the faces (``evaluate()`` done)."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
        gt = COCO()
        gt.dataset = {"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "face"}]}
        gt.createIndex()
        dt = gt.loadRes(results) if results else COCO()
        ev = COCOeval(gt, dt, iouType="bbox")
        ev.params.maxDets = [1, 100, max_dets]
        ev.evaluate()
    return ev
