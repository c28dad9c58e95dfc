"""FDDB fold, ellipse and detection-file parsers (torch-free), on tests/data/fddb and inline files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facedet.data.fddb import ellipse_bounding_boxes, load_fddb
from facedet.data.fddb_format import (
    FDDBFormatError,
    boxes_to_rect_rows,
    read_detections,
    read_ellipse_list,
    read_fold_list,
    write_detections,
)

ROOT = Path(__file__).parent / "data" / "fddb"
ORDER = ["2002/07/19/big/img_1", "2002/07/19/big/img_2", "2002/07/20/big/img_3", "2002/08/01/big/img_4"]


def _write(tmp_path: Path, text: str, name: str = "dets.txt") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_load_fixture_counts_missing_image() -> None:
    fddb = load_fddb(ROOT)
    assert [im.name for im in fddb.images] == [ORDER[0], ORDER[1], ORDER[3]]
    assert [im.name for im in fddb.missing] == [ORDER[2]]
    assert fddb.order == ORDER
    assert [im.fold for im in fddb.images] == [1, 1, 2]
    assert fddb.num_faces == 3 and fddb.num_missing_faces == 1
    first = fddb.images[0].ellipses
    assert first.shape == (2, 5) and first.dtype == np.float64
    np.testing.assert_allclose(first[1], [18.5, 12.25, -1.4, 120.0, 60.0])


def test_load_only_some_folds_and_subset() -> None:
    fddb = load_fddb(ROOT, folds=[2])
    assert [im.name for im in fddb.images] == [ORDER[3]] and fddb.order == [ORDER[3]]
    sub = load_fddb(ROOT).subset(1)
    assert len(sub.images) == 1 and sub.missing == [] and sub.order == ORDER  # order stays whole
    with pytest.raises(ValueError, match="fold"):
        load_fddb(ROOT, folds=[11])


def test_present_images_file_overrides_disk(tmp_path: Path) -> None:
    (tmp_path / "FDDB-folds").mkdir()
    for f in (ROOT / "FDDB-folds").iterdir():
        (tmp_path / "FDDB-folds" / f.name).write_text(f.read_text())
    (tmp_path / "present-images.txt").write_text(ORDER[3] + "\n")  # no image files at all here
    fddb = load_fddb(tmp_path)
    assert [im.name for im in fddb.images] == [ORDER[3]]
    assert len(fddb.missing) == 3


def test_ellipse_list_errors_name_file_and_line(tmp_path: Path) -> None:
    bad_count = _write(tmp_path, "a/b\nx\n", "e1.txt")
    with pytest.raises(FDDBFormatError, match=r"e1\.txt:2: expected a face/detection count"):
        read_ellipse_list(bad_count)
    short = _write(tmp_path, "a/b\n1\n1 2 3 4\n", "e2.txt")
    with pytest.raises(FDDBFormatError, match=r"e2\.txt:3: ellipse line needs 6 numbers, got 4"):
        read_ellipse_list(short)
    truncated = _write(tmp_path, "a/b\n2\n1 2 0 4 5 1\n", "e3.txt")
    with pytest.raises(FDDBFormatError, match=r"e3\.txt:2: a/b: count says 2 faces"):
        read_ellipse_list(truncated)
    assert issubclass(FDDBFormatError, ValueError)


def test_fold_list_rejects_duplicates(tmp_path: Path) -> None:
    path = _write(tmp_path, "a/b\nc/d\na/b\n", "fold.txt")
    with pytest.raises(FDDBFormatError, match=r"fold\.txt:3: image 'a/b' listed twice"):
        read_fold_list(path)


def test_read_rect_detections_subsequence_of_fold_order(tmp_path: Path) -> None:
    text = f"{ORDER[0]}\n2\n1 2 3 4 0.9\n5 6 7 8 0.5\n{ORDER[1]}.jpg\n0\n{ORDER[3]}\n1\n0 0 10 10 1.5\n"
    dets = read_detections(_write(tmp_path, text), ORDER)
    assert list(dets) == [ORDER[0], ORDER[1], ORDER[3]]  # img_3 (absent image) may be left out
    assert dets[ORDER[0]].shape == (2, 5) and dets[ORDER[1]].shape == (0, 5)
    np.testing.assert_allclose(dets[ORDER[3]], [[0, 0, 10, 10, 1.5]])


def test_read_ellipse_detections(tmp_path: Path) -> None:
    text = f"{ORDER[0]}\n1\n30 20 1.2 50 45 0.7\n"
    dets = read_detections(_write(tmp_path, text), ORDER, kind="ellipse")
    assert dets[ORDER[0]].shape == (1, 6)
    with pytest.raises(FDDBFormatError, match=r":3: rect detection needs 5 numbers, got 6"):
        read_detections(_write(tmp_path, text), ORDER, kind="rect")


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        ("2002/01/01/big/img_9\n0\n", r":1: unknown image name '2002/01/01/big/img_9'"),
        (f"{ORDER[1]}\n0\n{ORDER[0]}\n0\n", r":3: image '2002/07/19/big/img_1' is out of fold order"),
        (f"{ORDER[0]}\n0\n{ORDER[0]}\n0\n", r":3: image '2002/07/19/big/img_1' listed twice"),
        (f"{ORDER[0]}\nthree\n", r":2: expected a face/detection count, got 'three'"),
        (f"{ORDER[0]}\n-1\n", r":2: negative count -1"),
        (f"{ORDER[0]}\n", r":1: file ends after image name"),
        (f"{ORDER[0]}\n1\n1 2 3 0.5\n", r":3: rect detection needs 5 numbers, got 4"),
        (f"{ORDER[0]}\n1\n1 2 3 4 high\n", r":3: rect detection has a non-number"),
        (f"{ORDER[0]}\n1\n1 2 3 4 nan\n", r":3: rect detection has a non-finite number"),
        (f"{ORDER[0]}\n2\n1 2 3 4 0.5\n", r":2: 2002/07/19/big/img_1: count says 2 detections, file ends after 1"),
        (f"{ORDER[0]}\n2\n1 2 3 4 0.5\n{ORDER[1]}\n0\n", r":4: .*count says 2 detections but image name found"),
        (f"{ORDER[0]}\n0\n1 2 3 4 0.5\n", r":3: unknown image name '1 2 3 4 0.5' \(a detection line"),
    ],
)
def test_malformed_detection_files(tmp_path: Path, text: str, pattern: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(FDDBFormatError, match=pattern) as info:
        read_detections(path, ORDER)
    assert str(info.value).startswith(str(path))


def test_write_then_read_round_trip(tmp_path: Path) -> None:
    rows = boxes_to_rect_rows(np.array([[10, 20, 40, 60]], np.float32), np.array([0.75], np.float32))
    np.testing.assert_allclose(rows, [[10, 20, 30, 40, 0.75]])
    path = tmp_path / "out.txt"
    write_detections(path, [(ORDER[0], rows), (ORDER[1], np.zeros((0, 5)))])
    assert path.read_text().splitlines()[:3] == [ORDER[0], "1", "10.000000 20.000000 30.000000 40.000000 0.750000"]
    back = read_detections(path, ORDER)
    np.testing.assert_allclose(back[ORDER[0]], rows)
    assert back[ORDER[1]].shape == (0, 5)


def test_ellipse_bounding_boxes() -> None:
    boxes = ellipse_bounding_boxes(np.array([[10.0, 5.0, 0.0, 50.0, 40.0], [10.0, 5.0, np.pi / 2, 0.0, 0.0]]))
    np.testing.assert_allclose(boxes, [[40, 35, 60, 45], [-5, -10, 5, 10]], atol=1e-9)
