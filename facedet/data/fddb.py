"""FDDB folds, ellipse annotations and detection files (the official text formats).

Torch-free (stdlib + numpy). Layout of an FDDB root::

    FDDB-folds/FDDB-fold-01.txt ... FDDB-fold-10.txt                 image names, fold order
    FDDB-folds/FDDB-fold-01-ellipseList.txt ...                      name, count, one ellipse per line
    originalPics/<name>.jpg                                          the images
    present-images.txt                                               (optional) names whose .jpg is here

Ellipse lines are ``major_radius minor_radius angle center_x center_y 1`` (pixels, angle in
radians). Detection files (what the official evaluator reads) list, per image and in fold order,
the name line, the count line, then ``left top width height score`` (rectangles) or
``major_radius minor_radius angle center_x center_y score`` (ellipses) per detection.

Every parse error is an ``FDDBFormatError`` (a ``ValueError``) naming the file and the line.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "FDDBFormatError",
    "FDDBImage",
    "FDDBSet",
    "DetKind",
    "NUM_FOLDS",
    "read_fold_list",
    "read_ellipse_list",
    "read_present_images",
    "load_fddb",
    "image_path",
    "read_detections",
    "write_detections",
    "boxes_to_rect_rows",
    "ellipse_bounding_boxes",
]

log = logging.getLogger(__name__)

NUM_FOLDS = 10
DetKind = Literal["rect", "ellipse"]
# Fields per detection line (score included) for each detection kind.
_DET_FIELDS: dict[str, int] = {"rect": 5, "ellipse": 6}


class FDDBFormatError(ValueError):
    """A malformed FDDB file; the message starts with ``path:line:``."""

    def __init__(self, path: str | Path, line: int | None, message: str) -> None:
        self.path = str(path)
        self.line = line
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {message}")


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


def _normalize_name(name: str) -> str:
    # Detection files written by other tools sometimes carry the extension or a "./" prefix.
    name = name.strip()
    if name.startswith("./"):
        name = name[2:]
    if name.lower().endswith(".jpg"):
        name = name[:-4]
    return name


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """(1-based line number, stripped text) for every non-blank line."""
    with open(path, encoding="utf-8") as f:
        for number, raw in enumerate(f, start=1):
            text = raw.strip()
            if text:
                yield number, text


def _parse_count(path: Path, number: int, text: str) -> int:
    try:
        count = int(text)
    except ValueError:
        raise FDDBFormatError(path, number, f"expected a face/detection count, got {text!r}") from None
    if count < 0:
        raise FDDBFormatError(path, number, f"negative count {count}")
    return count


def _parse_floats(path: Path, number: int, text: str, expected: int, what: str) -> list[float]:
    parts = text.split()
    if len(parts) != expected:
        raise FDDBFormatError(path, number, f"{what} needs {expected} numbers, got {len(parts)}: {text!r}")
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise FDDBFormatError(path, number, f"{what} has a non-number: {text!r}") from None
    if not all(np.isfinite(values)):
        raise FDDBFormatError(path, number, f"{what} has a non-finite number: {text!r}")
    return values


def read_fold_list(path: str | Path) -> list[str]:
    """Image names of one ``FDDB-fold-XX.txt`` (or ``present-images.txt``), in file order.

    Raises:
        FDDBFormatError: a line holds more than one token, or a name repeats.
    """
    path = Path(path)
    names: list[str] = []
    seen: set[str] = set()
    for number, text in _lines(path):
        if len(text.split()) != 1:
            raise FDDBFormatError(path, number, f"expected one image name, got {text!r}")
        name = _normalize_name(text)
        if name in seen:
            raise FDDBFormatError(path, number, f"image {name!r} listed twice")
        seen.add(name)
        names.append(name)
    return names


def read_present_images(path: str | Path) -> list[str]:
    """Names in ``present-images.txt`` (same format as a fold list)."""
    return read_fold_list(path)


def read_ellipse_list(path: str | Path) -> list[tuple[str, NDArray[np.float64]]]:
    """Parse one ``FDDB-fold-XX-ellipseList.txt``.

    Returns:
        (name, ellipses float64 (K, 5)) per image, in file order; columns major_radius,
        minor_radius, angle (radians), center_x, center_y (pixels). The trailing ``1`` is dropped.

    Raises:
        FDDBFormatError: bad count line, wrong field count, non-numeric field, truncated file.
    """
    path = Path(path)
    out: list[tuple[str, NDArray[np.float64]]] = []
    lines = _lines(path)
    for number, name_text in lines:
        name = _normalize_name(name_text)
        if len(name.split()) != 1:
            raise FDDBFormatError(path, number, f"expected an image name, got {name_text!r}")
        count_line = next(lines, None)
        if count_line is None:
            raise FDDBFormatError(path, number, f"file ends after image name {name!r} (no count line)")
        count = _parse_count(path, *count_line)
        rows = np.zeros((count, 5), np.float64)
        for k in range(count):
            face_line = next(lines, None)
            if face_line is None:
                raise FDDBFormatError(path, count_line[0], f"{name}: count says {count} faces, file ends after {k}")
            values = _parse_floats(path, *face_line, expected=6, what="ellipse line")
            rows[k] = values[:5]
        out.append((name, rows))
    return out


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


def read_detections(path: str | Path, order: Sequence[str], kind: DetKind = "rect") -> dict[str, NDArray[np.float64]]:
    """Parse an FDDB detection file and check it against the fold order.

    The file must list images in fold order (a subsequence of ``order``: images may be absent,
    e.g. those missing from a partial FDDB copy), each with a count line and that many lines.

    Args:
        path: detection file.
        order: every image name in fold order (``FDDBSet.order``).
        kind: ``"rect"`` (``left top width height score``) or ``"ellipse"``
            (``major minor angle cx cy score``).

    Returns:
        name -> float64 (N, 5) rectangles or (N, 6) ellipses, score last; insertion in file order.

    Raises:
        FDDBFormatError: unknown image, image out of fold order or repeated, bad count line,
            wrong number of fields, truncated file.
    """
    if kind not in _DET_FIELDS:
        raise ValueError(f"kind must be 'rect' or 'ellipse', got {kind!r}")
    path = Path(path)
    fields = _DET_FIELDS[kind]
    position = {name: i for i, name in enumerate(order)}
    out: dict[str, NDArray[np.float64]] = {}
    last_pos = -1
    lines = _lines(path)
    for number, name_text in lines:
        name = _normalize_name(name_text)
        if name not in position:
            hint = " (a detection line where an image name was expected?)" if _is_numeric_row(name_text) else ""
            raise FDDBFormatError(path, number, f"unknown image name {name_text!r}{hint}")
        pos = position[name]
        if name in out:
            raise FDDBFormatError(path, number, f"image {name!r} listed twice")
        if pos < last_pos:
            raise FDDBFormatError(
                path, number, f"image {name!r} is out of fold order (comes before {order[last_pos]!r} in the folds)"
            )
        last_pos = pos
        count_line = next(lines, None)
        if count_line is None:
            raise FDDBFormatError(path, number, f"file ends after image name {name!r} (no count line)")
        count = _parse_count(path, *count_line)
        rows = np.zeros((count, fields), np.float64)
        for k in range(count):
            det_line = next(lines, None)
            if det_line is None:
                raise FDDBFormatError(
                    path, count_line[0], f"{name}: count says {count} detections, file ends after {k}"
                )
            if _normalize_name(det_line[1]) in position:
                raise FDDBFormatError(
                    path, det_line[0], f"{name}: count says {count} detections but image name found after {k}"
                )
            rows[k] = _parse_floats(path, *det_line, expected=fields, what=f"{kind} detection")
        out[name] = rows
    return out


def _is_numeric_row(text: str) -> bool:
    try:
        [float(p) for p in text.split()]
    except ValueError:
        return False
    return True


def write_detections(
    path: str | Path, entries: Iterable[tuple[str, NDArray[np.floating]]], kind: DetKind = "rect"
) -> None:
    """Write an FDDB detection file (official format) in the order given.

    Args:
        path: output file.
        entries: (name, rows) per image; rows (N, 5) ``left top width height score`` for
            ``"rect"`` or (N, 6) ``major minor angle cx cy score`` for ``"ellipse"``. An image
            with no detections still gets its name and a ``0`` line.
        kind: detection kind.
    """
    fields = _DET_FIELDS[kind]
    with open(path, "w", encoding="utf-8") as f:
        for name, rows in entries:
            rows = np.asarray(rows, np.float64).reshape(-1, fields)
            f.write(f"{name}\n{rows.shape[0]}\n")
            for row in rows:
                f.write(" ".join(f"{v:.6f}" for v in row) + "\n")


def boxes_to_rect_rows(boxes: NDArray[np.floating], scores: NDArray[np.floating]) -> NDArray[np.float64]:
    """xyxy boxes (N, 4) + scores (N,) -> (N, 5) ``left top width height score`` rows."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    out = np.zeros((boxes.shape[0], 5), np.float64)
    out[:, :2] = boxes[:, :2]
    out[:, 2:4] = boxes[:, 2:] - boxes[:, :2]
    out[:, 4] = np.asarray(scores, np.float64).reshape(-1)
    return out


def ellipse_bounding_boxes(ellipses: NDArray[np.floating]) -> NDArray[np.float64]:
    """Tight axis-aligned xyxy boxes (K, 4) of rotated ellipses (K, >=5) (major, minor, angle, cx, cy)."""
    e = np.atleast_2d(np.asarray(ellipses, np.float64))
    a, b, t, cx, cy = (e[:, i] for i in range(5))
    # Half extents of an ellipse with semi-axes a (rotated by t) and b.
    hx = np.sqrt((a * np.cos(t)) ** 2 + (b * np.sin(t)) ** 2)
    hy = np.sqrt((a * np.sin(t)) ** 2 + (b * np.cos(t)) ** 2)
    return np.stack([cx - hx, cy - hy, cx + hx, cy + hy], axis=1)
