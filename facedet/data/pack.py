"""A compact copy of a WIDER Face tree: images shrunk and re-encoded, boxes scaled to match.

Why: to train on another machine (a rented GPU, a container) the data set has to travel with the
job, and the full WIDER download (or even a 480-px copy) is far larger than the training needs.
Training at 256-320 px never uses more pixels than that, so the images are stored with their
longer side at most ``max_side`` as JPEG: the 256-px copy of a 3,829-image training set is about
40 MiB.
The output is in the **official layout** (``WIDER_<split>/images/<event>/<name>.jpg`` and
``wider_face_split/wider_face_<split>_bbx_gt.txt``), so ``facedet train --data-root`` reads it
unchanged. Box coordinates are written with two decimals (the parser reads floats); the face
attributes (blur ... pose, including ``invalid``) are copied as they are.

Torch-free: numpy, OpenCV, stdlib.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from facedet.atomic import write_atomically
from facedet.data.wider import SPLITS, WiderSample, load_wider, split_paths


def _write_bytes(path: str, data: bytes) -> None:
    Path(path).write_bytes(data)


class PackError(RuntimeError):
    """An image of the source tree could not be read or written; the message names it."""


@dataclass(frozen=True)
class PackSummary:
    """What ``pack_wider`` wrote for one split."""

    split: str
    images: int
    faces: int
    image_bytes: int  # total size of the written JPEG files


def _record(name: str, sample: WiderSample, scale_x: float, scale_y: float) -> list[str]:
    """The annotation lines of one image: path, count, then ``x1 y1 w h`` + 6 attributes per face."""
    lines = [name, str(len(sample))]
    if len(sample) == 0:
        return [*lines, "0 0 0 0 0 0 0 0 0 0"]
    scaled = sample.boxes.astype(np.float64) * np.array([scale_x, scale_y, scale_x, scale_y])
    for box, attributes in zip(scaled, sample.attributes, strict=True):
        x1, y1, x2, y2 = box
        geometry = f"{x1:.2f} {y1:.2f} {x2 - x1:.2f} {y2 - y1:.2f}"
        lines.append(geometry + " " + " ".join(str(int(a)) for a in attributes))
    return lines


def pack_split(
    src_root: Path, dst_root: Path, split: str, max_side: int, quality: int, progress: bool = False
) -> PackSummary:
    """Shrink and re-encode one split of ``src_root`` into ``dst_root`` (see the module docstring).

    Raises:
        PackError: an image that cannot be decoded or written (names the file).
        FileNotFoundError, WiderFormatError, MissingImagesError: from the WIDER parser.
    """
    samples, _ = load_wider(src_root, split)
    _, src_images = split_paths(src_root, split)
    annotation, dst_images = split_paths(dst_root, split)
    lines: list[str] = []
    faces = written = 0
    for sample in tqdm(samples, desc=f"pack {split}", unit="img", disable=not progress):
        image = cv2.imread(str(sample.path), cv2.IMREAD_COLOR)
        if image is None:
            raise PackError(f"{sample.path}: not a readable image")
        height, width = image.shape[:2]
        scale_x = scale_y = min(1.0, max_side / max(height, width))
        if scale_x < 1.0:
            size = (max(1, round(width * scale_x)), max(1, round(height * scale_y)))
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
            scale_x, scale_y = size[0] / width, size[1] / height  # the factors the pixels actually got
        name = sample.path.relative_to(src_images).with_suffix(".jpg").as_posix()
        ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
        if not ok:
            raise PackError(f"{sample.path}: JPEG encoding failed")
        data = encoded.tobytes()
        write_atomically(dst_images / name, partial(_write_bytes, data=data))
        written += int(encoded.size)
        faces += len(sample)
        lines += _record(name, sample, scale_x, scale_y)
    text = "\n".join(lines) + "\n"
    write_atomically(annotation, lambda tmp: Path(tmp).write_text(text))
    return PackSummary(split, len(samples), faces, written)


def pack_wider(
    src_root: str | Path,
    dst_root: str | Path,
    max_side: int = 256,
    quality: int = 75,
    splits: tuple[str, ...] = SPLITS,
    progress: bool = False,
) -> list[PackSummary]:
    """Write a compact copy of ``src_root``'s splits under ``dst_root``; one summary per split."""
    if max_side < 32:
        raise ValueError(f"max_side must be at least 32 px, got {max_side}")
    if not 1 <= quality <= 100:
        raise ValueError(f"JPEG quality must be in 1..100, got {quality}")
    src, dst = Path(src_root), Path(dst_root)
    if src.resolve() == dst.resolve():
        raise ValueError(f"refusing to pack {src} onto itself")
    return [pack_split(src, dst, split, max_side, quality, progress) for split in splits]
