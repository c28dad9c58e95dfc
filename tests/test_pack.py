"""The compact WIDER copy: same images and faces, shrunk pixels, boxes scaled to match."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from facedet.data.pack import PackError, pack_wider
from facedet.data.wider import load_wider


def test_pack_shrinks_images_and_scales_boxes(wider_root: Path, tmp_path: Path) -> None:
    summaries = pack_wider(wider_root, tmp_path / "small", max_side=64, quality=80)
    for summary in summaries:
        source, _ = load_wider(wider_root, summary.split)
        packed, missing = load_wider(tmp_path / "small", summary.split)
        assert missing == [] and summary.images == len(source) == len(packed)
        assert summary.faces == sum(len(s) for s in source)
        assert summary.image_bytes == sum(p.path.stat().st_size for p in packed)
        for src, dst in zip(source, packed, strict=True):
            assert dst.path.name == src.path.name and dst.path.parent.name == src.path.parent.name
            h0, w0 = cv2.imread(str(src.path)).shape[:2]
            h1, w1 = cv2.imread(str(dst.path)).shape[:2]
            assert max(h1, w1) == min(64, max(h0, w0))
            scale = np.array([w1 / w0, h1 / h0, w1 / w0, h1 / h0], np.float32)
            np.testing.assert_allclose(dst.boxes, src.boxes * scale, atol=0.011)  # x1 and w each rounded to 0.01
            np.testing.assert_array_equal(dst.invalid, src.invalid)
            np.testing.assert_array_equal(dst.attributes, src.attributes)


def test_pack_keeps_small_images_at_their_size(wider_root: Path, tmp_path: Path) -> None:
    pack_wider(wider_root, tmp_path / "same", max_side=4096, splits=("val",))
    source, _ = load_wider(wider_root, "val")
    packed, _ = load_wider(tmp_path / "same", "val")
    for src, dst in zip(source, packed, strict=True):
        assert cv2.imread(str(dst.path)).shape == cv2.imread(str(src.path)).shape
        np.testing.assert_allclose(dst.boxes, src.boxes, atol=0.011)  # x1 and w each rounded to 0.01


def test_pack_names_a_corrupt_image(wider_root: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    for path in wider_root.rglob("*"):
        if path.is_file():
            target = broken / path.relative_to(wider_root)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(path.read_bytes())
    victim = sorted((broken / "WIDER_val" / "images").rglob("*.jpg"))[0]
    victim.write_bytes(b"not a jpeg")
    with pytest.raises(PackError, match=victim.name):
        pack_wider(broken, tmp_path / "out", splits=("val",))


def test_pack_rejects_bad_arguments(wider_root: Path) -> None:
    with pytest.raises(ValueError, match="onto itself"):
        pack_wider(wider_root, wider_root)
    with pytest.raises(ValueError, match="max_side"):
        pack_wider(wider_root, wider_root / "x", max_side=8)
    with pytest.raises(ValueError, match="quality"):
        pack_wider(wider_root, wider_root / "x", quality=0)
