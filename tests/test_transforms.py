"""Augmentation policies: boxes stay on their pixels through crop/scale/flip; eval equals letterbox."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray

from facedet.boxes import letterbox
from facedet.data.transforms import PAD_VALUE, build_transforms

SIZE = 96
# Two solid rectangles on black, each split into a left and a right colour (so a flip is visible):
# a face (green | blue) and an ignore region (red | magenta). Boxes are x1, y1, x2, y2.
FACE = (30, 40, 80, 100)
IGNORED = (110, 20, 150, 60)


def _scene() -> NDArray[np.uint8]:
    image = np.zeros((120, 180, 3), np.uint8)  # BGR
    x1, y1, x2, y2 = FACE
    mid = (x1 + x2) // 2
    image[y1:y2, x1:mid] = (0, 255, 0)
    image[y1:y2, mid:x2] = (255, 0, 0)
    x1, y1, x2, y2 = IGNORED
    mid = (x1 + x2) // 2
    image[y1:y2, x1:mid] = (0, 0, 255)
    image[y1:y2, mid:x2] = (255, 0, 255)
    return image


def _masks(image: NDArray[np.uint8]) -> dict[str, NDArray[np.bool_]]:
    """Pixels clearly of each colour (colour jitter keeps a dominant channel dominant)."""
    b, g, r = (image[..., i].astype(int) for i in range(3))
    return {
        "green": (g > b + 60) & (g > r + 60),
        "blue": (b > g + 60) & (b > r + 60),
        "red": (r > g + 60) & (r > b + 60),
        "magenta": (r > g + 60) & (b > g + 60),
    }


def _extent(mask: NDArray[np.bool_]) -> NDArray[np.float64]:
    """xyxy box (pixel edges) of a mask's True pixels."""
    ys, xs = np.nonzero(mask)
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float64)


def test_train_policy_keeps_boxes_on_their_pixels() -> None:
    transform = build_transforms("train", SIZE)
    image = _scene()
    boxes = np.array([FACE, IGNORED], np.float32)
    flipped = unflipped = checked = 0
    for seed in range(40):
        transform.set_random_seed(seed)
        out = transform(image=image, bboxes=boxes, ignore=np.array([0, 1]))
        assert out["image"].shape == (SIZE, SIZE, 3) and out["image"].dtype == np.uint8
        masks = _masks(out["image"])
        kept = np.asarray(out["bboxes"], np.float64).reshape(-1, 4)
        for box, ignore in zip(kept, np.asarray(out["ignore"]), strict=True):
            left, right = ("red", "magenta") if ignore else ("green", "blue")
            region = masks[left] | masks[right]
            assert region.sum() > 20, f"seed {seed}: box {box} (ignore={ignore}) has no pixels of its rectangle"
            # The box covers the rectangle's visible pixels and no more, up to the blur of a linear
            # resize: a zoomed edge spreads over up to 2 partly coloured pixels outside the box.
            extent = _extent(region)
            assert np.all(extent[:2] <= box[:2] + 1.0) and np.all(box[2:] <= extent[2:] + 1.0), (seed, box, extent)
            np.testing.assert_allclose(box, extent, atol=2.0, err_msg=f"seed {seed}")
            if box[0] > 0 and box[1] > 0 and box[2] < SIZE and box[3] < SIZE:  # not cut by the crop
                ys, xs = np.nonzero(region)
                centre = np.array([xs.mean(), ys.mean()]) + 0.5  # pixel centres
                np.testing.assert_allclose((box[:2] + box[2:]) / 2, centre, atol=1.0, err_msg=f"seed {seed}")
            # The left colour is left of the right one unless the image was flipped.
            if masks[left].any() and masks[right].any():
                is_flipped = _extent(masks[left])[0] > _extent(masks[right])[0]
                flipped += int(is_flipped)
                unflipped += int(not is_flipped)
            checked += 1
    # The random policy really crops, scales and flips across these seeds.
    assert checked >= 40 and flipped >= 5 and unflipped >= 5


def test_train_policy_drops_box_and_flag_together() -> None:
    # A crop that cannot keep both rectangles drops one box *and* its ignore flag.
    transform = build_transforms("train", 48)
    image = _scene()
    counts = set()
    for seed in range(30):
        transform.set_random_seed(seed)
        out = transform(image=image, bboxes=np.array([FACE, IGNORED], np.float32), ignore=np.array([0, 1]))
        assert len(out["bboxes"]) == len(out["ignore"])
        counts.add(len(out["bboxes"]))
    assert 1 in counts  # some crops lost a rectangle (AtLeastOneBBoxRandomCrop keeps >= 1)
    assert 0 not in counts


def test_train_policy_is_reproducible_per_seed() -> None:
    transform = build_transforms("train", SIZE)
    image = _scene()
    outs = []
    for _ in range(2):
        transform.set_random_seed(123)
        outs.append(transform(image=image, bboxes=np.array([FACE], np.float32), ignore=np.array([0])))
    np.testing.assert_array_equal(outs[0]["image"], outs[1]["image"])
    np.testing.assert_array_equal(np.asarray(outs[0]["bboxes"]), np.asarray(outs[1]["bboxes"]))


@pytest.mark.parametrize(("height", "width"), [(120, 180), (180, 120), (40, 50), (97, 333), (64, 64), (31, 17)])
def test_eval_policy_is_deterministic_and_equals_letterbox(height: int, width: int) -> None:
    rng = np.random.default_rng(height * 1000 + width)
    image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    box = np.array([[0.1 * width, 0.2 * height, 0.7 * width, 0.9 * height]], np.float32)
    transform = build_transforms("eval", 64)
    first = transform(image=image, bboxes=box, ignore=np.array([1]))
    second = transform(image=image, bboxes=box, ignore=np.array([1]))
    np.testing.assert_array_equal(first["image"], second["image"])
    np.testing.assert_array_equal(np.asarray(first["bboxes"]), np.asarray(second["bboxes"]))
    assert list(first["ignore"]) == [1]

    reference, geometry = letterbox(image, 64, PAD_VALUE)
    np.testing.assert_array_equal(first["image"], reference)
    # albumentations scales boxes by the rounded resized size, letterbox by the exact scale: <= 0.5 px.
    np.testing.assert_allclose(np.asarray(first["bboxes"]).reshape(-1, 4), box * geometry.scale, atol=0.5)
    # ... and Letterbox.to_original maps them back onto the original box.
    back = geometry.to_original(np.asarray(first["bboxes"], np.float32).reshape(-1, 4))
    np.testing.assert_allclose(back, box, atol=0.5 / geometry.scale)


def test_unknown_policy_raises() -> None:
    with pytest.raises(ValueError, match="unknown augmentation policy 'mosaic'"):
        build_transforms("mosaic", 64)


@pytest.mark.parametrize("policy", ["train", "scale"])
def test_gray_probability_one_gives_equal_channels_and_zero_changes_nothing(policy: str) -> None:
    image, boxes, ignore = _scene(), np.array([FACE], np.float32), np.array([0])
    gray = build_transforms(policy, SIZE, gray=1.0)
    np.random.seed(5)
    gray.set_random_seed(5)
    out = gray(image=image, bboxes=boxes, ignore=ignore)["image"]
    assert out.shape == (SIZE, SIZE, 3) and out.std() > 0
    np.testing.assert_array_equal(out[..., 0], out[..., 1])
    np.testing.assert_array_equal(out[..., 1], out[..., 2])
    # gray=0 builds the colour-only pipeline of earlier runs: the same draws, the same output.
    outs = []
    for transform in (build_transforms(policy, SIZE), build_transforms(policy, SIZE, gray=0.0)):
        np.random.seed(7)
        transform.set_random_seed(7)
        outs.append(transform(image=image, bboxes=boxes, ignore=ignore)["image"])
    np.testing.assert_array_equal(outs[0], outs[1])
