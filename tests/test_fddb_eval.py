"""The FDDB evaluator on hand-built cases whose answers are known (torch-free, no ../shared).

The ``needs_data`` test at the end runs scripts/check_fddb_reference.py against the official output
in ../shared/fddb-reference when that folder exists.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from facedet.data.fddb import load_fddb
from facedet.evaluation.fddb_eval import (
    ImageResult,
    Roc,
    accumulate,
    evaluate_detections,
    evaluate_image,
    image_size,
    overlap_matrix,
    rasterize_ellipse,
    rasterize_rect,
    read_roc,
    tpr_at_fp,
)

REPO = Path(__file__).resolve().parents[1]
FIXTURE = REPO / "tests" / "data" / "fddb"
W, H = 160, 100  # fixture image size
FACE = (30.0, 20.0, 1.2, 50.0, 45.0)  # an FDDB ellipse: major, minor, angle (rad), cx, cy


def _full_mask_ellipse(e: tuple[float, ...], width: int, height: int) -> np.ndarray:
    # What the official program does: draw on a whole-image mask (angle = e[2] in degrees).
    mask = np.zeros((height, width), np.uint8)
    cx, cy = (int(np.rint(np.float32(v))) for v in e[3:5])
    cv2.ellipse(mask, (cx, cy), (int(e[0]), int(e[1])), float(np.degrees(e[2])), 0, 360, 1, -1)
    return mask.astype(bool)


def _full_mask_rect(r: tuple[float, ...], width: int, height: int) -> np.ndarray:
    mask = np.zeros((height, width), np.uint8)
    p1 = (round(r[0]), round(r[1]))
    p2 = (round(r[0] + r[2]), round(r[1] + r[3]))
    cv2.rectangle(mask, p1, p2, 1, -1)
    return mask.astype(bool)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


def _result(overlap: list[list[float]], scores: list[float]) -> ImageResult:
    return evaluate_image("im", 1, np.asarray(overlap, np.float64).reshape(len(overlap), -1), np.asarray(scores))


# --- rasterization ----------------------------------------------------------------------------


def test_ellipse_window_equals_full_image_mask() -> None:
    rng = np.random.default_rng(0)
    for _ in range(200):
        e = (
            rng.uniform(1, 60),
            rng.uniform(1, 40),
            rng.uniform(-np.pi, np.pi),
            rng.uniform(-30, W + 30),
            rng.uniform(-30, H + 30),
        )
        region = rasterize_ellipse(e, W, H)
        full = _full_mask_ellipse(e, W, H)
        placed = np.zeros((H, W), bool)
        h, w = region.mask.shape
        placed[region.y0 : region.y0 + h, region.x0 : region.x0 + w] = region.mask
        assert np.array_equal(placed, full) and region.area == full.sum()


def test_rect_covers_both_corners_and_is_clipped() -> None:
    assert rasterize_rect((2, 3, 4, 5, 1.0), W, H).area == 5 * 6  # corners inclusive
    assert rasterize_rect((-10, -10, 20, 15, 1.0), W, H).area == 11 * 6  # only the inside part counts
    assert rasterize_rect((500, 500, 10, 10, 1.0), W, H).area == 0
    rng = np.random.default_rng(1)
    for _ in range(100):
        r = tuple(rng.uniform(-40, 180, 2)) + tuple(rng.uniform(0, 80, 2))
        region = rasterize_rect(r, W, H)
        assert region.area == _full_mask_rect(r, W, H).sum()


def test_overlap_matches_full_image_masks_for_a_partly_outside_face() -> None:
    face = (30.0, 22.0, 1.3, 150.0, 20.0)  # sticks out of the top-right corner
    rect = (120.0, 0.0, 40.0, 50.0)
    got = overlap_matrix([rasterize_ellipse(face, W, H)], [rasterize_rect(rect, W, H)])[0, 0]
    assert got == pytest.approx(_iou(_full_mask_ellipse(face, W, H), _full_mask_rect(rect, W, H)))


def test_image_size_reads_jpeg_header() -> None:
    assert image_size(str(FIXTURE / "originalPics/2002/07/19/big/img_1.jpg")) == (W, H)


# --- matching and thresholds on one image -----------------------------------------------------


def _square_straddling_half() -> tuple[tuple[float, ...], float, tuple[float, ...], float]:
    """Two squares centred on FACE: IoU just above 0.5 and just below (computed on pixel masks)."""
    face = _full_mask_ellipse(FACE, W, H)
    found: dict[bool, tuple[tuple[float, ...], float]] = {}
    for side in range(2, 90):
        rect = (FACE[3] - side / 2, FACE[4] - side / 2, float(side), float(side))
        iou = _iou(face, _full_mask_rect(rect, W, H))
        if 0.5 < iou < 0.56:
            found.setdefault(True, (rect, iou))
        if 0.44 < iou <= 0.5:
            found.setdefault(False, (rect, iou))
    return (*found[True], *found[False])


def test_box_just_above_and_just_below_half() -> None:
    above, iou_above, below, iou_below = _square_straddling_half()
    faces = [rasterize_ellipse(FACE, W, H)]
    for rect, iou, tp in ((above, iou_above, 1.0), (below, iou_below, 0.0)):
        overlap = overlap_matrix(faces, [rasterize_rect(rect, W, H)])
        assert overlap[0, 0] == pytest.approx(iou)
        r = evaluate_image("im", 1, overlap, np.array([0.9]))
        assert r.tp_disc.tolist() == [tp] and r.fp.tolist() == [int(1 - tp)]
        assert r.tp_cont[0] == pytest.approx(iou)  # continuous counts the overlap either way


def test_two_detections_on_one_face_give_one_tp_one_fp() -> None:
    r = _result([[0.8, 0.7]], [0.9, 0.4])
    assert r.thresholds.tolist() == [0.4, 0.9]
    assert r.tp_disc.tolist() == [1, 1] and r.fp.tolist() == [1, 0]
    assert r.tp_cont.tolist() == pytest.approx([0.8, 0.8])


def test_matching_maximizes_total_overlap() -> None:
    # Greedy on the 0.9 pair would leave face 2 unmatched; the Hungarian matching takes 0.8 + 0.6.
    r = _result([[0.9, 0.8], [0.6, 0.0]], [0.5, 0.5])
    assert r.tp_disc.tolist() == [2] and r.fp.tolist() == [0]
    assert r.tp_cont[0] == pytest.approx(1.4)


def test_ties_in_score_make_one_threshold() -> None:
    r = _result([[0.9, 0.0, 0.0]], [0.7, 0.7, 0.2])
    assert r.thresholds.tolist() == [0.2, 0.7]
    assert r.tp_disc.tolist() == [1, 1] and r.fp.tolist() == [2, 1]


def test_image_with_no_faces_counts_every_detection_false() -> None:
    r = evaluate_image("im", 1, np.zeros((0, 2)), np.array([0.3, 0.6]))
    assert r.num_faces == 0 and r.fp.tolist() == [2, 1] and r.tp_disc.tolist() == [0, 0]


def test_image_with_no_detections_adds_a_point_at_max_double() -> None:
    r = _result([[]], [])
    assert r.thresholds.tolist() == [sys.float_info.max] and r.fp.tolist() == [0] and r.num_faces == 1


# --- accumulation over images -----------------------------------------------------------------


def _official_merge(results: list[ImageResult]) -> list[tuple[float, int, float, float, int]]:
    """The official Results::merge, image by image (threshold, N, TP disc, TP cont, FP)."""
    cum: list[tuple[float, int, float, float, int]] = []
    for r in results:
        new = [
            (float(t), r.num_faces, float(d), float(c), int(f))
            for t, d, c, f in zip(r.thresholds, r.tp_disc, r.tp_cont, r.fp, strict=True)
        ]
        if not cum:
            cum = new
            continue
        n1, n2 = cum[0][1], new[0][1]
        out, i, j = [], 0, 0
        while i < len(cum) and j < len(new):
            a, b = cum[i], new[j]
            out.append((min(a[0], b[0]), a[1] + b[1], a[2] + b[2], a[3] + b[3], a[4] + b[4]))
            if a[0] < b[0]:
                i += 1
            elif a[0] == b[0]:
                i, j = i + 1, j + 1
            else:
                j += 1
        out += [(a[0], a[1] + n2, a[2], a[3], a[4]) for a in cum[i:]]
        out += [(b[0], b[1] + n1, b[2], b[3], b[4]) for b in new[j:]]
        cum = out
    return cum


def test_accumulate_equals_the_official_merge() -> None:
    rng = np.random.default_rng(2)
    results = []
    for _ in range(30):
        k, n = int(rng.integers(0, 4)), int(rng.integers(0, 6))
        overlap = rng.uniform(0, 1, (k, n)) * (rng.uniform(0, 1, (k, n)) < 0.4)
        scores = rng.choice([0.1, 0.2, 0.5, 0.7, 0.9, 1.3], n)  # shared values: ties across images
        results.append(evaluate_image("im", 1, overlap, scores))
    roc = accumulate(results)
    merged = _official_merge(results)
    assert len(merged) == roc.thresholds.size
    assert [m[0] for m in merged] == roc.thresholds.tolist()
    assert all(m[1] == roc.num_faces for m in merged)
    assert [m[2] for m in merged] == pytest.approx(roc.tp_disc.tolist())
    assert [m[3] for m in merged] == pytest.approx(roc.tp_cont.tolist())
    assert [m[4] for m in merged] == roc.fp.tolist()


def test_tpr_at_fp_is_a_step_curve_with_last_point_rule() -> None:
    tpr, fp = np.array([0.9, 0.8, 0.5, 0.0]), np.array([1200, 800, 90, 0])
    assert tpr_at_fp(tpr, fp, [50, 100, 1000, 2000]) == [0.0, 0.5, 0.8, 0.9]
    assert tpr_at_fp(tpr[1:], fp[1:], [5000]) == [0.8]  # the curve ends at 800 FP: last point


def test_roc_files_use_official_layout(tmp_path: Path) -> None:
    roc = accumulate([_result([[0.8, 0.7]], [0.9, 0.4]), _result([[]], [])])
    disc, cont = roc.write(tmp_path)
    assert disc.read_text().splitlines() == ["0.5 1 0.4", "0.5 0 0.9", "0 0 1.79769e+308"]
    assert cont.read_text().splitlines() == ["0.4 1", "0.4 0", "0 0"]
    tpr, fp = read_roc(cont)
    assert tpr.tolist() == [0.4, 0.4, 0.0] and fp.tolist() == [1, 0, 0]


# --- whole sets -------------------------------------------------------------------------------


def _perfect(kind: str) -> dict[str, np.ndarray]:
    fddb = load_fddb(FIXTURE)
    out = {}
    for im in fddb.images:
        if kind == "ellipse":
            out[im.name] = np.concatenate([im.ellipses, np.ones((im.num_faces, 1))], axis=1)
        else:
            out[im.name] = np.zeros((0, 5))
    return out


def test_perfect_ellipse_detections_give_tpr_one_at_zero_fp() -> None:
    fddb = load_fddb(FIXTURE)
    result = evaluate_detections(fddb, _perfect("ellipse"), kind="ellipse")
    assert result.num_images == 3 and result.num_faces == 3 and result.num_missing_images == 1
    assert result.roc.fp.tolist() == [0, 0]  # thresholds 1.0 and max double (img_2 has no detections)
    assert result.roc.tpr_at([0]) == [1.0] and result.roc.tpr_at([0], continuous=True) == [1.0]
    m = result.metrics()
    assert m["overall"]["disc"]["100"] == 1.0 and set(m["folds"]) == {"1", "2"}


def test_no_detections_anywhere_gives_zero(tmp_path: Path) -> None:
    result = evaluate_detections(load_fddb(FIXTURE), _perfect("rect"))
    assert isinstance(result.roc, Roc) and result.roc.tpr_at() == [0.0] * 4


def test_missing_image_entry_is_an_error() -> None:
    dets = _perfect("rect")
    dets.pop("2002/07/19/big/img_2")
    with pytest.raises(ValueError, match="detections missing for 1 images"):
        evaluate_detections(load_fddb(FIXTURE), dets)


@pytest.mark.needs_data
def test_official_reference_reproduced() -> None:
    shared = REPO.parent / "shared"
    if not (shared / "fddb-reference" / "haar-dets.txt").exists():
        pytest.skip("../shared/fddb-reference not available")
    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "check_fddb_reference.py"), "--shared", str(shared)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
