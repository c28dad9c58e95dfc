"""Scale-aware crops: the chosen face gets the drawn height, lies in the window, boxes follow pixels."""

from __future__ import annotations

import math

import numpy as np
import pytest

from facedet.data.scale_sampling import PAD_VALUE, ScaleAwareCrop, _boxes_in_window
from facedet.data.transforms import build_transforms


def _image_with_faces(boxes: list[list[float]], shape: tuple[int, int] = (300, 400)) -> np.ndarray:
    """A grey image where each face box is a white rectangle (so boxes can be found in pixels)."""
    image = np.full((*shape, 3), 40, np.uint8)
    for x0, y0, x1, y1 in boxes:
        image[int(y0) : int(y1), int(x0) : int(x1)] = 255
    return image


def test_single_face_gets_a_log_uniform_height_inside_the_window() -> None:
    face = [100.0, 80.0, 140.0, 130.0]  # 40 x 50
    image = _image_with_faces([face])
    sampler = ScaleAwareCrop(128, min_height=16, max_height=96, max_upscale=4.0, flip_p=0.0)
    heights = []
    for seed in range(200):
        sampler.set_random_seed(seed)
        out = sampler(image=image, bboxes=[face], ignore=[0])
        assert out["image"].shape == (128, 128, 3) and out["image"].dtype == np.uint8
        ((x0, y0, x1, y1),) = out["bboxes"]
        assert 0 <= x0 < x1 <= 128 and 0 <= y0 < y1 <= 128 and not out["ignore"][0]
        heights.append(y1 - y0)
        # The white rectangle is where the box says (resampling blurs at most a pixel or two).
        inner = out["image"][int(y0) + 2 : int(y1) - 2, int(x0) + 2 : int(x1) - 2]
        assert inner.size and inner.min() > 200
    logs = np.log(heights)
    assert min(heights) >= 16 * 0.97 and max(heights) <= 96 * 1.03
    # log-uniform: the mean log height sits mid-range and each third of the log range is used
    assert np.mean(logs) == pytest.approx((math.log(16) + math.log(96)) / 2, abs=0.12)
    thirds = np.histogram(logs, bins=3, range=(math.log(16), math.log(96)))[0]
    assert thirds.min() > 40


def test_upscale_cap_picks_the_largest_face_and_reproduces_with_a_seed() -> None:
    faces = [[10.0, 10.0, 18.0, 20.0], [200.0, 100.0, 230.0, 140.0]]  # 10 and 40 px tall
    image = _image_with_faces(faces)
    sampler = ScaleAwareCrop(160, min_height=150, max_height=150, max_upscale=2.0, flip_p=0.0)
    sampler.set_random_seed(3)
    out = sampler(image=image, bboxes=faces, ignore=[0, 0])
    heights = out["bboxes"][:, 3] - out["bboxes"][:, 1]
    assert heights.max() == pytest.approx(80.0, abs=1.0)  # 40 px face at the 2x cap, not 150 px
    sampler.set_random_seed(3)
    again = sampler(image=image, bboxes=faces, ignore=[0, 0])
    assert np.array_equal(again["image"], out["image"]) and np.array_equal(again["bboxes"], out["bboxes"])


def test_cut_faces_become_ignore_invisible_ones_are_dropped() -> None:
    boxes = np.array([[10, 10, 30, 30], [50, 0, 90, 20], [56, 10, 66, 20], [70, 70, 90, 90]], np.float32)
    labels = np.array([0, 2, 5, 6])  # bit 0: ignore; higher bits (a source index) travel unchanged
    kept, flags = _boxes_in_window(boxes, labels, 0, 0, 64, min_visibility=0.6)
    # inside; 14/40 visible -> ignore; 8/10 visible -> kept (already ignore); outside -> dropped
    assert kept.tolist() == [[10, 10, 30, 30], [50, 0, 64, 20], [56, 10, 64, 20]]
    assert flags.tolist() == [0, 3, 5]


def test_flip_mirrors_boxes_with_the_pixels() -> None:
    face = [50.0, 50.0, 90.0, 100.0]
    image = _image_with_faces([face])
    sampler = ScaleAwareCrop(64, min_height=40, max_height=40, max_upscale=1.0, flip_p=1.0)
    sampler.set_random_seed(0)
    out = sampler(image=image, bboxes=[face], ignore=[0])
    ((x0, y0, x1, y1),) = out["bboxes"]
    assert y1 - y0 == pytest.approx(40, abs=0.5)
    assert out["image"][int(y0) + 2 : int(y1) - 2, int(x0) + 2 : int(x1) - 2].min() > 200
    assert out["image"][:, : max(int(x0) - 2, 0)].max(initial=0) < 100  # nothing white left of it


def test_images_without_faces_are_letterboxed_whole() -> None:
    image = _image_with_faces([], shape=(100, 200))
    sampler = ScaleAwareCrop(128, flip_p=0.0)
    sampler.set_random_seed(1)
    out = sampler(image=image, bboxes=np.zeros((0, 4)), ignore=[])
    assert out["bboxes"].shape == (0, 4)
    assert (out["image"] == PAD_VALUE).any() and (out["image"] == 40).any()


def test_scale_policy_is_built_and_validated() -> None:
    sampler = build_transforms("scale", 96, 16, 64)
    assert isinstance(sampler, ScaleAwareCrop) and sampler.size == 96
    with pytest.raises(ValueError, match="min_height"):
        ScaleAwareCrop(96, min_height=50, max_height=20)
