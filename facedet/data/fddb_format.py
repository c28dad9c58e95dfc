"""The official FDDB text formats: fold lists, ellipse lists and detection files.

Torch-free (stdlib + numpy). ``facedet.data.fddb`` puts them together into an ``FDDBSet``.

Fold lists (``FDDB-fold-XX.txt``, ``present-images.txt``) hold one image name per line. Ellipse
lists (``FDDB-fold-XX-ellipseList.txt``) hold, per image, the name line, the count line, then
``major_radius minor_radius angle center_x center_y 1`` per face (pixels, angle in radians).
Detection files (what the official evaluator reads) list, per image and in fold order, the name
line, the count line, then ``left top width height score`` (rectangles) or
``major_radius minor_radius angle center_x center_y score`` (ellipses) per detection.

Every parse error is an ``FDDBFormatError`` (a ``ValueError``) naming the file and the line.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "FDDBFormatError",
    "DetKind",
    "read_fold_list",
    "read_ellipse_list",
    "read_present_images",
    "read_detections",
    "write_detections",
    "boxes_to_rect_rows",
]

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
