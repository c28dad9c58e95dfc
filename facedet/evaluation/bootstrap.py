"""How sure is a WIDER-val AP50, and is model A really better than model B? A bootstrap over images.

WIDER val here has 400 images, and only 263 of its faces are at least 48 px tall: one face is
0.004 of AP50, and two checkpoints 0.01 apart may differ by three faces. Resampling the images
with replacement (and, to compare two models, the *same* images for both: a paired bootstrap)
gives the spread that such a difference would show on another draw of images like these.

AP50 is recomputed exactly as pycocotools accumulates it (101 recall points, precision made
monotone from the right), from each detection's match at IoU 0.5 that pycocotools made once
(``facedet.evaluation.wider_ap.wider_matches``); an image drawn k times counts k times. Torch-free.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "ImageMatches",
    "BootstrapComparison",
    "weighted_ap50",
    "resample_counts",
    "bootstrap_interval",
    "paired_bootstrap",
]

RECALL_POINTS = np.linspace(0.0, 1.0, 101)  # pycocotools' recThrs
_CHUNK = 64  # resamples per vectorised block: (64, detections) float64 arrays


@dataclass(frozen=True)
class ImageMatches:
    """One model's detections on N images, each with its outcome at IoU 0.5 (D detections).

    Attributes:
        image: (D,) int64 index of the detection's image, in 0..N-1; detections in image order,
            each image's best first (the order pycocotools accumulates them in).
        score: (D,) float64 detection score.
        true_positive: (D,) bool matched a scored face.
        scored: (D,) bool counts as a true or false positive (False: it matched an ignore region).
        faces: (N,) int64 scored faces per image.
    """

    image: NDArray[np.int64]
    score: NDArray[np.float64]
    true_positive: NDArray[np.bool_]
    scored: NDArray[np.bool_]
    faces: NDArray[np.int64]

    @property
    def num_images(self) -> int:
        return len(self.faces)


def weighted_ap50(matches: ImageMatches, weights: NDArray[Any]) -> NDArray[np.float64]:
    """AP50 for each row of ``weights`` (B, N): how many times each image counts (1s: the plain AP).

    Returns (B,) float64; NaN for a row whose images hold no scored face.
    """
    rows: NDArray[np.float64] = np.atleast_2d(np.asarray(weights, np.float64))
    if rows.shape[1] != matches.num_images:
        raise ValueError(f"weights cover {rows.shape[1]} images, the matches {matches.num_images}")
    order = np.argsort(-matches.score, kind="mergesort")  # pycocotools' tie order
    image = matches.image[order]
    tp = (matches.true_positive & matches.scored)[order].astype(np.float64)
    fp = (~matches.true_positive & matches.scored)[order].astype(np.float64)
    out = np.empty(len(rows))
    for start in range(0, len(rows), _CHUNK):
        block = rows[start : start + _CHUNK]
        out[start : start + _CHUNK] = _ap50_block(block, block[:, image], tp, fp, matches.faces)
    return out


def _ap50_block(
    weights: NDArray[np.float64],
    det_weights: NDArray[np.float64],
    tp: NDArray[np.float64],
    fp: NDArray[np.float64],
    faces: NDArray[np.int64],
) -> NDArray[np.float64]:
    """AP50 of a (b, N) block of image weights; ``det_weights`` (b, D) are the same per detection."""
    positives = weights @ faces.astype(np.float64)  # (b,) faces in each resample
    tp_sum = np.cumsum(det_weights * tp, axis=1)
    fp_sum = np.cumsum(det_weights * fp, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = tp_sum / positives[:, None]
    precision = tp_sum / (tp_sum + fp_sum + np.spacing(1))
    precision = np.maximum.accumulate(precision[:, ::-1], axis=1)[:, ::-1]  # monotone, as COCO
    ap = np.full(len(weights), np.nan)
    for row in range(len(weights)):
        if positives[row] <= 0:
            continue
        at = np.searchsorted(recall[row], RECALL_POINTS, side="left")
        reached = at < recall.shape[1]
        ap[row] = precision[row, at[reached]].sum() / len(RECALL_POINTS)
    return ap


def resample_counts(num_images: int, resamples: int, seed: int) -> NDArray[np.int64]:
    """(resamples, num_images): how many times each image is drawn, N draws with replacement per row."""
    if resamples < 1:
        raise ValueError(f"resamples must be at least 1, got {resamples}")
    uniform = np.full(num_images, 1.0 / num_images)
    return np.random.default_rng(seed).multinomial(num_images, uniform, size=resamples).astype(np.int64)


def bootstrap_interval(matches: ImageMatches, resamples: int = 1000, seed: int = 0) -> tuple[float, float]:
    """95% interval (2.5th, 97.5th percentile) of one model's AP50 over image resamples."""
    return _central95(weighted_ap50(matches, resample_counts(matches.num_images, resamples, seed)))


def _central95(values: NDArray[np.float64]) -> tuple[float, float]:
    """(2.5th, 97.5th percentile) of the finite values (an all-ignored resample gives NaN); NaNs
    when none is finite."""
    finite = values[np.isfinite(values)]
    if not len(finite):
        return float("nan"), float("nan")
    low, high = np.percentile(finite, [2.5, 97.5])
    return float(low), float(high)


@dataclass(frozen=True)
class BootstrapComparison:
    """AP50 of models A and B on the same images, and the spread of A - B over image resamples."""

    ap_a: float
    ap_b: float
    low: float  # 2.5th percentile of A - B
    high: float  # 97.5th percentile of A - B
    a_better: float  # fraction of resamples where A scores higher than B
    resamples: int

    @property
    def difference(self) -> float:
        return self.ap_a - self.ap_b

    @property
    def significant(self) -> bool:
        """The 95% interval of A - B excludes 0."""
        return self.low > 0 or self.high < 0

    def as_dict(self) -> dict[str, float | int | bool]:
        return {
            "AP50_a": self.ap_a,
            "AP50_b": self.ap_b,
            "difference": self.difference,
            "ci95_low": self.low,
            "ci95_high": self.high,
            "a_better": self.a_better,
            "resamples": self.resamples,
            "significant": self.significant,
        }


def paired_bootstrap(a: ImageMatches, b: ImageMatches, resamples: int = 1000, seed: int = 0) -> BootstrapComparison:
    """Compare two models' AP50 on the same N images by resampling the images (both alike)."""
    if a.num_images != b.num_images or not np.array_equal(a.faces, b.faces):
        raise ValueError("the two models were not scored on the same images and faces")
    counts = resample_counts(a.num_images, resamples, seed)
    ones = np.ones((1, a.num_images))
    diff: NDArray[np.float64] = weighted_ap50(a, counts) - weighted_ap50(b, counts)
    low, high = _central95(diff)
    diff = diff[np.isfinite(diff)]
    return BootstrapComparison(
        ap_a=float(weighted_ap50(a, ones)[0]),
        ap_b=float(weighted_ap50(b, ones)[0]),
        low=low,
        high=high,
        a_better=float(np.mean(diff > 0)) if len(diff) else float("nan"),
        resamples=resamples,
    )
