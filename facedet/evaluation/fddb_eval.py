"""FDDB scoring as the official evaluator does it (Jain & Learned-Miller 2010, ``evaluation.tgz``).

Torch-free: numpy, scipy for the assignment solver (imported where used), and OpenCV through
``facedet.evaluation.fddb_regions``.

The protocol, step by step, as the official C++ program implements it:

1. **Regions are pixel sets on the image grid** (``facedet.evaluation.fddb_regions``). Every ground-truth
   ellipse and every detection is drawn filled into a mask the size of the image (so a region
   partly outside the image counts only its inside part). Ellipses are drawn by OpenCV with the
   centre rounded to a pixel, the radii truncated to integers and the angle converted to
   degrees; a rectangle ``left top width height`` covers the pixels from
   ``round(left), round(top)`` to ``round(left + width), round(top + height)``, both corners
   included.
2. **Overlap** of a face and a detection = |intersection| / |union| of the two pixel sets.
3. **Per image and per score threshold** ``t`` (every distinct detection score of the image),
   the detections with score ``>= t`` are matched to the faces by a maximum-weight bipartite
   matching (Hungarian) on the overlap matrix. Matched pairs with overlap > 0 count: the
   discrete TP is the number of pairs with overlap > 0.5, the continuous TP the sum of the
   overlaps of all pairs; FP = detections kept - discrete TP (the continuous ROC uses the same FP).
4. **Across images** the ROC has one point per distinct score of the whole set (ascending, the
   most permissive threshold first), each image counted at its own smallest threshold ``>= t``
   (no detection left: TP = FP = 0). An image with no detections at all adds a point at the
   largest double. TPR = TP / number of faces.

``DiscROC.txt`` holds ``TPR FP threshold`` and ``ContROC.txt`` ``TPR FP``, one line per point in
that order, numbers printed as C++ streams print doubles (``%g``).

TPR at k false positives (``tpr_at_fp``): the highest TPR among ROC points with FP <= k (a step
curve, no interpolation); when a curve ends before k FP, that is the TPR of its last point.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from facedet.data.fddb import FDDBSet
from facedet.data.fddb_format import DetKind
from facedet.evaluation.fddb_regions import Region, image_size, overlap_matrix, rasterize_ellipse, rasterize_rect

__all__ = [
    "FP_COUNTS",
    "Region",
    "ImageResult",
    "Roc",
    "FDDBEvaluation",
    "FDDBScorer",
    "image_size",
    "rasterize_ellipse",
    "rasterize_rect",
    "overlap_matrix",
    "evaluate_image",
    "accumulate",
    "tpr_at_fp",
    "read_roc",
    "evaluate_detections",
]

FP_COUNTS: tuple[int, ...] = (100, 500, 1000, 2000)
TPR_RULE = "TPR at k FP = highest TPR among ROC points with FP <= k (step curve; last point if the curve ends first)"
_NO_DETECTIONS_THRESHOLD = sys.float_info.max  # the official std::numeric_limits<double>::max()


@dataclass(frozen=True)
class ImageResult:
    """One image's step data: at each of its thresholds (ascending), TP and FP counts."""

    name: str
    fold: int
    num_faces: int
    thresholds: NDArray[np.float64]  # (U,) ascending distinct scores
    tp_disc: NDArray[np.float64]  # (U,) matched pairs with overlap > 0.5
    tp_cont: NDArray[np.float64]  # (U,) sum of matched overlaps
    fp: NDArray[np.int64]  # (U,) detections kept - tp_disc


def _match(overlap: NDArray[np.float64]) -> NDArray[np.float64]:
    """Overlaps (> 0) of the pairs of a maximum-weight matching of an (K, N) overlap matrix."""
    from scipy.optimize import linear_sum_assignment

    rows = np.flatnonzero(overlap.sum(axis=1) > 0)  # the official drops all-zero rows and columns
    cols = np.flatnonzero(overlap.sum(axis=0) > 0)
    if rows.size == 0 or cols.size == 0:
        return np.zeros((0,), np.float64)
    sub = overlap[np.ix_(rows, cols)]
    r, c = linear_sum_assignment(sub, maximize=True)
    scores: NDArray[np.float64] = sub[r, c]
    return scores[scores > 0]


def evaluate_image(name: str, fold: int, overlap: NDArray[np.float64], scores: NDArray[np.floating]) -> ImageResult:
    """Sweep one image's distinct detection scores.

    Args:
        name: image name; fold: its fold.
        overlap: (K, N) face-by-detection overlaps.
        scores: (N,) detection scores.
    """
    scores = np.asarray(scores, np.float64).reshape(-1)
    num_faces = overlap.shape[0]
    if scores.size == 0:
        one = np.zeros((1,), np.float64)
        return ImageResult(
            name, fold, num_faces, np.array([_NO_DETECTIONS_THRESHOLD]), one, one.copy(), np.zeros((1,), np.int64)
        )
    thresholds = np.unique(scores)  # ascending
    useful = overlap.sum(axis=0) > 0  # detections touching some face
    tp_disc = np.zeros(thresholds.size, np.float64)
    tp_cont = np.zeros(thresholds.size, np.float64)
    fp = np.zeros(thresholds.size, np.int64)
    last_count, last = -1, (0.0, 0.0)
    for k, t in enumerate(thresholds):
        kept = scores >= t
        cols = np.flatnonzero(kept & useful)
        # Kept sets shrink as t rises, so an equal count means the same matrix: reuse the match.
        if cols.size != last_count:
            pairs = _match(overlap[:, cols])
            last, last_count = (float(np.count_nonzero(pairs > 0.5)), float(pairs.sum())), cols.size
        tp_disc[k], tp_cont[k] = last
        fp[k] = int(kept.sum()) - int(last[0])
    return ImageResult(name, fold, num_faces, thresholds, tp_disc, tp_cont, fp)


@dataclass(frozen=True)
class Roc:
    """A cumulative FDDB ROC, points in the official order (ascending threshold)."""

    thresholds: NDArray[np.float64]  # (T,)
    tp_disc: NDArray[np.float64]  # (T,)
    tp_cont: NDArray[np.float64]  # (T,)
    fp: NDArray[np.int64]  # (T,)
    num_faces: int

    @property
    def tpr_disc(self) -> NDArray[np.float64]:
        return self.tp_disc / self.num_faces if self.num_faces else np.zeros_like(self.tp_disc)

    @property
    def tpr_cont(self) -> NDArray[np.float64]:
        return self.tp_cont / self.num_faces if self.num_faces else np.zeros_like(self.tp_cont)

    def tpr_at(self, fp_counts: Sequence[int] = FP_COUNTS, continuous: bool = False) -> list[float]:
        """TPR at each FP count (rule in ``TPR_RULE``)."""
        return tpr_at_fp(self.tpr_cont if continuous else self.tpr_disc, self.fp, fp_counts)

    def write(self, out_dir: str | Path, prefix: str = "") -> tuple[Path, Path]:
        """Write ``<prefix>DiscROC.txt`` and ``<prefix>ContROC.txt`` as the official program does."""
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        disc, cont = out_dir / f"{prefix}DiscROC.txt", out_dir / f"{prefix}ContROC.txt"
        with open(disc, "w") as fd, open(cont, "w") as fc:
            for t, td, tc, f in zip(self.thresholds, self.tp_disc, self.tp_cont, self.fp, strict=True):
                if self.num_faces:
                    fd.write(f"{td / self.num_faces:g} {int(f)} {t:g}\n")
                    fc.write(f"{tc / self.num_faces:g} {int(f)}\n")
                else:
                    fd.write(f"0 0 {t:g}\n")
                    fc.write("0 0\n")
        return disc, cont


def accumulate(results: Sequence[ImageResult]) -> Roc:
    """Merge per-image step data into one ROC (the official ``Results::merge``, vectorized).

    Each image contributes, at global threshold t, its values at its smallest threshold >= t, or
    zero above its largest. Written as differences: value[k] - value[k+1] added at threshold[k]
    and summed from the top down.
    """
    num_faces = sum(r.num_faces for r in results)
    if not results:
        empty = np.zeros((0,), np.float64)
        return Roc(empty, empty, empty, np.zeros((0,), np.int64), 0)
    thresholds = np.unique(np.concatenate([r.thresholds for r in results]))  # (T,) ascending
    d_disc = np.zeros(thresholds.size, np.float64)
    d_cont = np.zeros(thresholds.size, np.float64)
    d_fp = np.zeros(thresholds.size, np.int64)
    for r in results:
        idx = np.searchsorted(thresholds, r.thresholds)
        np.add.at(d_disc, idx, r.tp_disc - np.append(r.tp_disc[1:], 0.0))
        np.add.at(d_cont, idx, r.tp_cont - np.append(r.tp_cont[1:], 0.0))
        np.add.at(d_fp, idx, r.fp - np.append(r.fp[1:], 0))
    top_down = np.s_[::-1]
    return Roc(
        thresholds=thresholds,
        tp_disc=np.cumsum(d_disc[top_down])[top_down],
        tp_cont=np.cumsum(d_cont[top_down])[top_down],
        fp=np.cumsum(d_fp[top_down])[top_down],
        num_faces=num_faces,
    )


def tpr_at_fp(tpr: NDArray[np.floating], fp: NDArray[np.integer], fp_counts: Sequence[int] = FP_COUNTS) -> list[float]:
    """Highest TPR among points with FP <= k, for each k (0.0 when no point qualifies)."""
    tpr, fp = np.asarray(tpr, np.float64), np.asarray(fp, np.float64)
    return [float(tpr[fp <= k].max()) if np.any(fp <= k) else 0.0 for k in fp_counts]


def read_roc(path: str | Path) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """(TPR, FP) columns of a DiscROC.txt or ContROC.txt file."""
    data = np.loadtxt(path, ndmin=2)
    return data[:, 0], data[:, 1]


@dataclass
class FDDBEvaluation:
    """Everything one scoring run produces."""

    roc: Roc
    fold_rocs: dict[int, Roc]
    per_image: list[ImageResult]
    num_missing_images: int
    num_missing_faces: int

    @property
    def num_images(self) -> int:
        return len(self.per_image)

    @property
    def num_faces(self) -> int:
        return self.roc.num_faces

    def metrics(self, fp_counts: Sequence[int] = FP_COUNTS) -> dict[str, object]:
        """JSON-ready numbers: TPR at each FP count, discrete and continuous, overall and per fold."""

        def summary(roc: Roc) -> dict[str, object]:
            return {
                "faces": roc.num_faces,
                "max_fp": int(roc.fp.max()) if roc.fp.size else 0,
                "disc": dict(zip(map(str, fp_counts), roc.tpr_at(fp_counts), strict=True)),
                "cont": dict(zip(map(str, fp_counts), roc.tpr_at(fp_counts, continuous=True), strict=True)),
            }

        return {
            "images": self.num_images,
            "faces": self.num_faces,
            "missing_images": self.num_missing_images,
            "missing_faces": self.num_missing_faces,
            "fp_counts": list(fp_counts),
            "tpr_rule": TPR_RULE,
            "overall": summary(self.roc),
            "folds": {str(f): summary(r) for f, r in sorted(self.fold_rocs.items())},
        }


class FDDBScorer:
    """Scores detection sets on one ``FDDBSet``, caching image sizes and face masks per image."""

    def __init__(self, fddb: FDDBSet) -> None:
        self.fddb = fddb
        self._faces: dict[str, tuple[tuple[int, int], list[Region]]] = {}

    def faces(self, name: str) -> tuple[tuple[int, int], list[Region]]:
        """((width, height), rasterized ground-truth ellipses) of an image (cached)."""
        if name not in self._faces:
            image = self.fddb.images[self._index[name]]
            width, height = image_size(str(self.fddb.path(image)))
            regions = [rasterize_ellipse(e, width, height) for e in image.ellipses]
            self._faces[name] = ((width, height), regions)
        return self._faces[name]

    @functools.cached_property
    def _index(self) -> dict[str, int]:
        return {im.name: i for i, im in enumerate(self.fddb.images)}

    def score(self, detections: Mapping[str, NDArray[np.floating]], kind: DetKind = "rect") -> FDDBEvaluation:
        """Score detections (name -> (N, 5) rect or (N, 6) ellipse rows, score last) on every image.

        Raises:
            ValueError: a present image has no entry in ``detections``.
        """
        absent = [im.name for im in self.fddb.images if im.name not in detections]
        if absent:
            raise ValueError(
                f"detections missing for {len(absent)} images (first: {absent[0]}); "
                "an image with no detections needs its name and a 0 line"
            )
        draw = rasterize_rect if kind == "rect" else rasterize_ellipse
        per_image: list[ImageResult] = []
        for image in self.fddb.images:
            (width, height), faces = self.faces(image.name)
            rows = np.asarray(detections[image.name], np.float64)
            dets = [draw(row, width, height) for row in rows]
            overlap = overlap_matrix(faces, dets)
            per_image.append(evaluate_image(image.name, image.fold, overlap, rows[:, -1] if rows.size else rows))
        folds = sorted({r.fold for r in per_image})
        return FDDBEvaluation(
            roc=accumulate(per_image),
            fold_rocs={f: accumulate([r for r in per_image if r.fold == f]) for f in folds},
            per_image=per_image,
            num_missing_images=len(self.fddb.missing),
            num_missing_faces=self.fddb.num_missing_faces,
        )


def evaluate_detections(
    fddb: FDDBSet, detections: Mapping[str, NDArray[np.floating]], kind: DetKind = "rect"
) -> FDDBEvaluation:
    """Score one detection set on an FDDB set (see ``FDDBScorer.score``)."""
    return FDDBScorer(fddb).score(detections, kind)
