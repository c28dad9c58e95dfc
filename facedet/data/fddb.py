"""FDDB as a data set: the annotated images of some folds, and which of them are on disk.

Torch-free (stdlib + numpy). Layout of an FDDB root::

    FDDB-folds/FDDB-fold-01.txt ... FDDB-fold-10.txt                 image names, fold order
    FDDB-folds/FDDB-fold-01-ellipseList.txt ...                      name, count, one ellipse per line
    originalPics/<name>.jpg                                          the images
    present-images.txt                                               (optional) names whose .jpg is here

The text formats themselves are parsed by ``facedet.data.fddb_format``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from facedet.data.fddb_format import FDDBFormatError, read_ellipse_list, read_fold_list, read_present_images

__all__ = ["FDDBImage", "FDDBSet", "NUM_FOLDS", "load_fddb", "image_path", "ellipse_bounding_boxes"]

log = logging.getLogger(__name__)

NUM_FOLDS = 10


@dataclass(frozen=True)
class FDDBImage:
    """One annotated FDDB image.

    Attributes:
        name: fold-file name without extension, e.g. ``2002/08/11/big/img_591``.
        fold: 1..10.
        ellipses: float64 (K, 5) major_radius, minor_radius, angle (radians), center_x, center_y.
    """

    name: str
    fold: int
    ellipses: NDArray[np.float64]

    @property
    def num_faces(self) -> int:
        return int(self.ellipses.shape[0])


@dataclass
class FDDBSet:
    """The annotated images of some folds, split into those whose image file exists and the rest.

    Attributes:
        root: the FDDB root directory.
        images: present images, in fold order (fold 1 first).
        missing: annotated images whose ``originalPics/<name>.jpg`` is absent (skipped, counted).
        order: every annotated name of the chosen folds in fold order (present or not); detection
            files are checked against it.
    """

    root: Path
    images: list[FDDBImage]
    missing: list[FDDBImage] = field(default_factory=list)
    order: list[str] = field(default_factory=list)

    @property
    def num_faces(self) -> int:
        return sum(im.num_faces for im in self.images)

    @property
    def num_missing_faces(self) -> int:
        return sum(im.num_faces for im in self.missing)

    def path(self, image: FDDBImage | str) -> Path:
        return image_path(self.root, image.name if isinstance(image, FDDBImage) else image)

    def subset(self, max_images: int | None) -> FDDBSet:
        """The first ``max_images`` present images (fold order).

        ``order`` stays whole, so a detection file for every image still parses; missing images
        are kept only up to the last image chosen.
        """
        if max_images is None or max_images >= len(self.images):
            return self
        images = self.images[: max(0, max_images)]
        last = self.order.index(images[-1].name) + 1 if images else 0
        kept = set(self.order[:last])
        return FDDBSet(self.root, images, [m for m in self.missing if m.name in kept], list(self.order))


def image_path(root: str | Path, name: str) -> Path:
    """``<root>/originalPics/<name>.jpg``."""
    return Path(root) / "originalPics" / f"{name}.jpg"


def load_fddb(root: str | Path, folds: Sequence[int] | None = None) -> FDDBSet:
    """Load the ellipse annotations of the chosen folds and find which images are present.

    Presence comes from ``present-images.txt`` when the root has one, otherwise from checking
    ``originalPics/<name>.jpg`` on disk.

    Args:
        root: FDDB root (holding ``FDDB-folds/``).
        folds: fold numbers 1..10 (default: every fold file found).

    Raises:
        FileNotFoundError: the fold files are missing.
        FDDBFormatError: malformed files, or a fold file and its ellipse list disagree.
    """
    root = Path(root)
    if folds is None:  # every fold whose file is there (a full FDDB copy has all ten)
        folds = [f for f in range(1, NUM_FOLDS + 1) if (root / "FDDB-folds" / f"FDDB-fold-{f:02d}.txt").exists()]
        if not folds:
            raise FileNotFoundError(f"no FDDB-folds/FDDB-fold-XX.txt under {root}")
        if len(folds) < NUM_FOLDS:
            log.warning("FDDB: only folds %s found under %s", folds, root)
    folds = list(folds)
    present_file = root / "present-images.txt"
    present = set(read_present_images(present_file)) if present_file.exists() else None
    images: list[FDDBImage] = []
    missing: list[FDDBImage] = []
    order: list[str] = []
    for fold in folds:
        if not 1 <= fold <= NUM_FOLDS:
            raise ValueError(f"fold must be 1..{NUM_FOLDS}, got {fold}")
        fold_file = root / "FDDB-folds" / f"FDDB-fold-{fold:02d}.txt"
        ellipse_file = root / "FDDB-folds" / f"FDDB-fold-{fold:02d}-ellipseList.txt"
        for f in (fold_file, ellipse_file):
            if not f.exists():
                raise FileNotFoundError(f"FDDB fold file not found: {f}")
        names = read_fold_list(fold_file)
        ellipses = read_ellipse_list(ellipse_file)
        if [n for n, _ in ellipses] != names:
            raise FDDBFormatError(ellipse_file, None, f"image names differ from {fold_file.name}")
        for name, rows in ellipses:
            image = FDDBImage(name=name, fold=fold, ellipses=rows)
            order.append(name)
            is_present = name in present if present is not None else image_path(root, name).exists()
            (images if is_present else missing).append(image)
    if missing:
        log.info("FDDB: %d of %d images missing from %s (skipped)", len(missing), len(order), root)
    return FDDBSet(root=root, images=images, missing=missing, order=order)


def ellipse_bounding_boxes(ellipses: NDArray[np.floating]) -> NDArray[np.float64]:
    """Tight axis-aligned xyxy boxes (K, 4) of rotated ellipses (K, >=5) (major, minor, angle, cx, cy)."""
    e = np.atleast_2d(np.asarray(ellipses, np.float64))
    a, b, t, cx, cy = (e[:, i] for i in range(5))
    # Half extents of an ellipse with semi-axes a (rotated by t) and b.
    hx = np.sqrt((a * np.cos(t)) ** 2 + (b * np.sin(t)) ** 2)
    hy = np.sqrt((a * np.sin(t)) ** 2 + (b * np.cos(t)) ** 2)
    return np.stack([cx - hx, cy - hy, cx + hx, cy + hy], axis=1)
