"""WIDER Face annotation parser (official layout). Torch-free: stdlib + numpy.

Layout under a data root::

    WIDER_train/images/<event>/<name>.jpg
    WIDER_val/images/<event>/<name>.jpg
    wider_face_split/wider_face_train_bbx_gt.txt
    wider_face_split/wider_face_val_bbx_gt.txt

Each txt record is an image path line (relative to ``WIDER_<split>/images``), a face-count line,
then one line per face ``x1 y1 w h blur expression illumination invalid occlusion pose``. An
image with no face has count 0 followed by one all-zero line (``0 0 0 0 0 0 0 0 0 0``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

DEFAULT_DATA_ROOT = Path("data")
SPLITS = ("train", "val")
FIELDS = ("x1", "y1", "w", "h", "blur", "expression", "illumination", "invalid", "occlusion", "pose")


class WiderFormatError(ValueError):
    """A malformed WIDER annotation file; the message names the file and the 1-based line."""


class MissingImagesError(FileNotFoundError):
    """Images listed in the annotation file that are not on disk (``missing`` lists them all)."""

    def __init__(self, annotation: Path, missing: list[Path]) -> None:
        shown = "\n  ".join(str(p) for p in missing[:20])
        more = f"\n  ... and {len(missing) - 20} more" if len(missing) > 20 else ""
        super().__init__(f"{annotation}: {len(missing)} listed image(s) missing on disk:\n  {shown}{more}")
        self.annotation = annotation
        self.missing = missing


@dataclass(frozen=True)
class WiderSample:
    """One annotated image.

    Attributes:
        path: image file.
        boxes: float32 (K, 4) x1, y1, x2, y2 in image pixels (x2 = x1 + w).
        invalid: bool (K,) the official ``invalid`` flag (to be ignored, not learned).
        attributes: int16 (K, 6) blur, expression, illumination, invalid, occlusion, pose.
    """

    path: Path
    boxes: NDArray[np.float32]
    invalid: NDArray[np.bool_]
    attributes: NDArray[np.int16] = field(repr=False)

    def __len__(self) -> int:
        return int(self.boxes.shape[0])


def split_paths(data_root: str | Path, split: str) -> tuple[Path, Path]:
    """(annotation txt, image folder) of a split under the official layout."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {SPLITS}")
    root = Path(data_root)
    if not (root / "wider_face_split").is_dir() and (root / "widerface" / "wider_face_split").is_dir():
        root = root / "widerface"  # the default data root `data/` holds widerface/ and fddb/
    return root / "wider_face_split" / f"wider_face_{split}_bbx_gt.txt", root / f"WIDER_{split}" / "images"


def parse_annotations(annotation: str | Path, image_dir: str | Path) -> list[WiderSample]:
    """Parse a ``wider_face_*_bbx_gt.txt`` file (no check that images exist).

    Raises:
        WiderFormatError: bad count, wrong field count, non-numeric value, negative size,
            or a file that ends inside a record; the message gives ``file:line``.
    """
    annotation = Path(annotation)
    image_dir = Path(image_dir)
    lines = annotation.read_text().splitlines()
    samples: list[WiderSample] = []
    i = 0  # 0-based index of the next line to read

    def fail(line_index: int, message: str) -> WiderFormatError:
        return WiderFormatError(f"{annotation}:{line_index + 1}: {message}")

    while i < len(lines):
        name = lines[i].strip()
        if not name:  # tolerate blank lines between records (and a trailing newline)
            i += 1
            continue
        if not name.lower().endswith((".jpg", ".jpeg", ".png")):
            raise fail(i, f"expected an image path line, got {name!r}")
        if i + 1 >= len(lines):
            raise fail(i, f"file ends after image line {name!r} (no face count)")
        count_text = lines[i + 1].strip()
        try:
            count = int(count_text)
        except ValueError:
            raise fail(i + 1, f"face count must be an integer, got {count_text!r}") from None
        if count < 0:
            raise fail(i + 1, f"face count must be >= 0, got {count}")
        rows_to_read = max(count, 1)  # a 0-face image still has one all-zero line
        if i + 2 + rows_to_read > len(lines):
            raise fail(len(lines) - 1, f"file ends inside the record of {name!r} ({count} faces announced)")
        values = np.zeros((rows_to_read, len(FIELDS)), np.float64)
        for r in range(rows_to_read):
            line_index = i + 2 + r
            parts = lines[line_index].split()
            if len(parts) != len(FIELDS):
                raise fail(line_index, f"expected {len(FIELDS)} fields ({' '.join(FIELDS)}), got {len(parts)}")
            try:
                values[r] = [float(p) for p in parts]
            except ValueError:
                raise fail(line_index, f"non-numeric field in {lines[line_index].strip()!r}") from None
            if values[r, 2] < 0 or values[r, 3] < 0:
                raise fail(line_index, "negative box width or height")
        if count == 0:
            if np.any(values[0] != 0):
                raise fail(i + 2, "a 0-face image must be followed by an all-zero line")
            values = values[:0]
        boxes = np.concatenate([values[:, :2], values[:, :2] + values[:, 2:4]], axis=1).astype(np.float32)
        attributes = values[:, 4:].astype(np.int16)
        samples.append(WiderSample(image_dir / name, boxes, attributes[:, 3] != 0, attributes))
        i += 2 + rows_to_read
    return samples


def find_missing(samples: list[WiderSample]) -> list[Path]:
    """Image paths of ``samples`` that are not files on disk."""
    return [s.path for s in samples if not s.path.is_file()]


def load_wider(
    data_root: str | Path = DEFAULT_DATA_ROOT, split: str = "train", allow_missing: bool = False
) -> tuple[list[WiderSample], list[Path]]:
    """Parse one split of a WIDER Face tree and check that every listed image is present.

    Args:
        data_root: folder holding ``WIDER_<split>/`` and ``wider_face_split/``.
        split: ``"train"`` or ``"val"``.
        allow_missing: if True, missing images are dropped from the samples and returned in the
            second element for the caller to report; if False they raise.

    Returns:
        (samples present on disk, missing image paths).

    Raises:
        FileNotFoundError: no annotation file. MissingImagesError: images missing and not allowed.
        WiderFormatError: malformed annotation file.
    """
    annotation, image_dir = split_paths(data_root, split)
    if not annotation.is_file():
        raise FileNotFoundError(f"{annotation}: WIDER Face annotation file not found (see data/README.md)")
    samples = parse_annotations(annotation, image_dir)
    missing = find_missing(samples)
    if missing and not allow_missing:
        raise MissingImagesError(annotation, missing)
    missing_set = set(missing)
    return [s for s in samples if s.path not in missing_set], missing


def seeded_subset(samples: list[WiderSample], limit: int | None, seed: int) -> list[WiderSample]:
    """A seeded spread of ``limit`` samples over the whole list, in list order (WIDER files are
    grouped by event: the first N images would all be parades). ``facedet train
    --max-val-images N --val-seed S`` validates on ``seeded_subset(val, N, S)``."""
    if limit is None or limit >= len(samples):
        return samples
    keep = np.sort(np.random.default_rng(seed).permutation(len(samples))[:limit])
    return [samples[i] for i in keep]
