"""Shared fixtures: a tiny WIDER Face tree (official layout) generated in a temporary folder."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

# Per image: (width, height, faces as (x1, y1, w, h, invalid)). One face-less image, one invalid face.
WIDER_IMAGES: dict[str, list[tuple[int, int, list[tuple[int, int, int, int, int]]]]] = {
    "train": [
        (128, 96, [(10, 12, 30, 36, 0), (70, 30, 24, 28, 0)]),
        (96, 128, [(20, 40, 40, 48, 0)]),
        (128, 96, [(50, 20, 34, 40, 0), (6, 60, 10, 12, 1)]),
        (112, 112, [(30, 30, 44, 52, 0), (84, 8, 20, 24, 0)]),
        (128, 80, []),
        (96, 96, [(8, 8, 36, 40, 0), (56, 50, 28, 34, 0)]),
        (128, 96, [(64, 10, 40, 50, 0)]),
        (100, 120, [(24, 20, 30, 38, 0), (40, 70, 26, 30, 0)]),
    ],
    "val": [
        (128, 96, [(16, 16, 40, 48, 0)]),
        (96, 128, [(30, 50, 36, 44, 0), (4, 4, 8, 9, 1)]),
        (128, 96, [(70, 30, 30, 36, 0)]),
        (112, 112, []),
    ],
}


def _draw_image(width: int, height: int, faces: list[tuple[int, int, int, int, int]], seed: int) -> np.ndarray:
    """A noisy background with a skin-coloured ellipse, two dark eyes and a mouth per face."""
    rng = np.random.default_rng(seed)
    image = rng.integers(40, 200, size=(height, width, 3), dtype=np.uint8)
    image = cv2.GaussianBlur(image, (5, 5), 0)
    for x, y, w, h, _ in faces:
        centre = (x + w // 2, y + h // 2)
        cv2.ellipse(image, centre, (w // 2, h // 2), 0, 0, 360, (140, 170, 220), -1)
        eye = max(1, w // 10)
        cv2.circle(image, (x + w // 3, y + h * 2 // 5), eye, (30, 30, 30), -1)
        cv2.circle(image, (x + 2 * w // 3, y + h * 2 // 5), eye, (30, 30, 30), -1)
        cv2.line(image, (x + w // 3, y + h * 3 // 4), (x + 2 * w // 3, y + h * 3 // 4), (60, 40, 120), max(1, h // 16))
    return image


def make_wider_tree(root: Path) -> Path:
    """Write ``WIDER_{train,val}/images/0--Parade/*.jpg`` and ``wider_face_split/*_bbx_gt.txt`` under root."""
    (root / "wider_face_split").mkdir(parents=True, exist_ok=True)
    for split_index, (split, images) in enumerate(WIDER_IMAGES.items()):
        image_dir = root / f"WIDER_{split}" / "images" / "0--Parade"
        image_dir.mkdir(parents=True, exist_ok=True)
        lines: list[str] = []
        for index, (width, height, faces) in enumerate(images):
            name = f"0_Parade_marchingband_1_{index}.jpg"
            pixels = _draw_image(width, height, faces, seed=100 * split_index + index)
            cv2.imwrite(str(image_dir / name), pixels, [cv2.IMWRITE_JPEG_QUALITY, 90])
            lines += [f"0--Parade/{name}", str(len(faces))]
            # x1 y1 w h blur expression illumination invalid occlusion pose
            lines += [f"{x} {y} {w} {h} 0 0 0 {invalid} 0 0 " for x, y, w, h, invalid in faces]
            if not faces:
                lines.append("0 0 0 0 0 0 0 0 0 0 ")
        (root / "wider_face_split" / f"wider_face_{split}_bbx_gt.txt").write_text("\n".join(lines) + "\n")
    return root


@pytest.fixture(scope="session")
def wider_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny WIDER Face tree: 8 train and 4 val images (one face-less each, invalid faces included)."""
    return make_wider_tree(tmp_path_factory.mktemp("widerface"))
