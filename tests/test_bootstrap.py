"""The bootstrap's AP50 is pycocotools' AP50 (image weights of 1), weights count images, and the
paired comparison separates a clearly better model from noise."""

from __future__ import annotations

import numpy as np
import pytest

from facedet.detections import Detections
from facedet.evaluation.bootstrap import bootstrap_interval, paired_bootstrap, weighted_ap50
from facedet.evaluation.wider_ap import wider_ap, wider_matches

GroundTruth = list[tuple[np.ndarray, np.ndarray]]


def _scene(seed: int, images: int = 30) -> GroundTruth:
    """Faces of 8-120 px on a 640-px canvas, about one in ten flagged invalid; some images face-less."""
    rng = np.random.default_rng(seed)
    gts: GroundTruth = []
    for _ in range(images):
        n = int(rng.integers(0, 6))
        xy = rng.uniform(0, 500, (n, 2))
        size = rng.uniform(8, 120, (n, 1))
        gts.append((np.hstack([xy, xy + size]), rng.random(n) < 0.1))
    return gts


def _detector(gts: GroundTruth, jitter: float, miss: float, false_per_image: int, seed: int) -> list[Detections]:
    """Detections near each face (relative corner jitter, faces missed with probability ``miss``) plus
    random false positives; scores favour the well-placed boxes."""
    rng = np.random.default_rng(seed)
    out = []
    for boxes, _ in gts:
        keep = boxes[rng.random(len(boxes)) >= miss]
        size = (keep[:, 2:] - keep[:, :2]).repeat(2, axis=1)
        found = keep + rng.normal(0, jitter, keep.shape) * size
        xy = rng.uniform(0, 500, (false_per_image, 2))
        false = np.hstack([xy, xy + rng.uniform(10, 80, (false_per_image, 1))])
        scores = np.concatenate([rng.uniform(0.3, 1.0, len(found)), rng.uniform(0.0, 0.6, false_per_image)])
        order = np.argsort(-scores)
        all_boxes = np.vstack([found, false]).astype(np.float32)[order]
        out.append(Detections(all_boxes, scores.astype(np.float32)[order]))
    return out


@pytest.mark.parametrize("min_size", [0.0, 48.0])
def test_unit_weights_reproduce_pycocotools(min_size: float) -> None:
    gts = _scene(1)
    dets = _detector(gts, jitter=0.08, miss=0.2, false_per_image=3, seed=2)
    expected = wider_ap(gts, dets, min_size=min_size)["AP50"]
    got = weighted_ap50(wider_matches(gts, dets, min_size=min_size), np.ones((1, len(gts))))[0]
    assert 0.1 < expected < 1.0
    assert got == pytest.approx(expected, abs=1e-12)


def test_a_weight_of_two_is_the_image_listed_twice() -> None:
    gts = _scene(3, images=12)
    dets = _detector(gts, jitter=0.1, miss=0.3, false_per_image=2, seed=4)
    weights = np.ones(len(gts))
    weights[[2, 5]] = [2, 3]
    weights[7] = 0
    listed = [i for i, w in enumerate(weights) for _ in range(int(w))]
    expected = wider_ap([gts[i] for i in listed], [dets[i] for i in listed])["AP50"]
    assert weighted_ap50(wider_matches(gts, dets), weights[None])[0] == pytest.approx(expected, abs=1e-12)


def test_a_model_against_itself_differs_by_nothing() -> None:
    gts = _scene(5)
    matches = wider_matches(gts, _detector(gts, jitter=0.1, miss=0.3, false_per_image=2, seed=6))
    result = paired_bootstrap(matches, matches, resamples=200, seed=0)
    assert result.difference == 0 and result.low == 0 and result.high == 0
    assert not result.significant and result.a_better == 0


def test_a_clearly_better_model_is_significant_and_the_interval_holds_the_ap() -> None:
    gts = _scene(7, images=60)
    good = wider_matches(gts, _detector(gts, jitter=0.03, miss=0.05, false_per_image=1, seed=8))
    poor = wider_matches(gts, _detector(gts, jitter=0.15, miss=0.4, false_per_image=4, seed=9))
    result = paired_bootstrap(good, poor, resamples=300, seed=1)
    assert result.ap_a > result.ap_b and result.significant and result.low > 0
    assert result.a_better > 0.95
    reverse = paired_bootstrap(poor, good, resamples=300, seed=1)
    assert reverse.high < 0 and reverse.difference == pytest.approx(-result.difference)
    low, high = bootstrap_interval(good, resamples=300, seed=2)
    assert low <= result.ap_a <= high


def test_models_scored_on_different_images_are_refused() -> None:
    gts = _scene(10)
    dets = _detector(gts, jitter=0.1, miss=0.2, false_per_image=2, seed=11)
    with pytest.raises(ValueError, match="same images"):
        paired_bootstrap(wider_matches(gts, dets), wider_matches(gts[:-1], dets[:-1]))
    with pytest.raises(ValueError, match="weights cover"):
        weighted_ap50(wider_matches(gts, dets), np.ones((1, 3)))
