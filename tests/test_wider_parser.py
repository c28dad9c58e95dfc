"""WIDER Face annotation parser: the official layout, the 0-face record, the invalid flag, errors."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from facedet.data.wider import MissingImagesError, WiderFormatError, load_wider, parse_annotations

VALID = """\
0--Parade/0_Parade_marchingband_1_5.jpg
2
78 221 7 8 2 0 0 0 0 0
449 330 122 149 0 0 0 1 0 0
0--Parade/0_Parade_Parade_0_452.jpg
0
0 0 0 0 0 0 0 0 0 0
1--Handshaking/1_Handshaking_1_12.jpg
1
10 20 30 40 1 1 0 0 2 1
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "wider_face_train_bbx_gt.txt"
    path.write_text(text)
    return path


def test_valid_file_with_zero_face_record_and_invalid_flag(tmp_path: Path) -> None:
    samples = parse_annotations(_write(tmp_path, VALID), tmp_path / "images")
    assert [s.path.relative_to(tmp_path / "images").as_posix() for s in samples] == [
        "0--Parade/0_Parade_marchingband_1_5.jpg",
        "0--Parade/0_Parade_Parade_0_452.jpg",
        "1--Handshaking/1_Handshaking_1_12.jpg",
    ]
    assert [len(s) for s in samples] == [2, 0, 1]
    # x1 y1 w h -> x1 y1 x2 y2
    np.testing.assert_array_equal(samples[0].boxes, np.array([[78, 221, 85, 229], [449, 330, 571, 479]], np.float32))
    assert samples[0].boxes.dtype == np.float32
    np.testing.assert_array_equal(samples[0].invalid, [False, True])
    np.testing.assert_array_equal(samples[0].attributes[0], [2, 0, 0, 0, 0, 0])
    # The all-zero line of a face-less image is not a face.
    assert samples[1].boxes.shape == (0, 4) and samples[1].invalid.shape == (0,)
    np.testing.assert_array_equal(samples[2].boxes, [[10, 20, 40, 60]])
    np.testing.assert_array_equal(samples[2].attributes, [[1, 1, 0, 0, 2, 1]])


def test_blank_lines_and_missing_final_newline_are_tolerated(tmp_path: Path) -> None:
    text = "a/b.jpg\n1\n1 2 3 4 0 0 0 0 0 0\n\n\nc/d.jpg\n1\n5 6 7 8 0 0 0 0 0 0"
    samples = parse_annotations(_write(tmp_path, text), tmp_path)
    assert [len(s) for s in samples] == [1, 1]
    np.testing.assert_array_equal(samples[1].boxes, [[5, 6, 12, 14]])


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        pytest.param("a/b.jpg\ntwo\n1 2 3 4 0 0 0 0 0 0\n", 2, "face count must be an integer", id="non-integer-count"),
        pytest.param("a/b.jpg\n-1\n1 2 3 4 0 0 0 0 0 0\n", 2, "face count must be >= 0", id="negative-count"),
        pytest.param(
            "a/b.jpg\n1\n1 2 3 4 0 0 0 0 0 0\nc/d.jpg\n1\n1 2 3 4 0 0 0\n", 6, "expected 10 fields", id="few-fields"
        ),
        pytest.param("a/b.jpg\n1\n1 2 3 4 0 0 0 0 0 0 9\n", 3, "got 11", id="many-fields"),
        pytest.param("a/b.jpg\n1\n1 2 x 4 0 0 0 0 0 0\n", 3, "non-numeric", id="non-numeric"),
        pytest.param("a/b.jpg\n1\n1 2 -3 4 0 0 0 0 0 0\n", 3, "negative box width or height", id="negative-width"),
        pytest.param("a/b.jpg\n1\n1 2 3 -4 0 0 0 0 0 0\n", 3, "negative box width or height", id="negative-height"),
        pytest.param(
            "a/b.jpg\n3\n1 2 3 4 0 0 0 0 0 0\n5 6 7 8 0 0 0 0 0 0\n", 4, "file ends inside the record", id="truncated"
        ),
        pytest.param("a/b.jpg\n1\n1 2 3 4 0 0 0 0 0 0\nc/d.jpg\n", 4, "no face count", id="ends-after-name"),
        pytest.param("a/b.jpg\n0\n1 2 3 4 0 0 0 0 0 0\n", 3, "all-zero line", id="zero-face-with-a-box"),
        pytest.param("a/b.jpg\n1\n1 2 3 4 0 0 0 0 0 0\n17\n", 4, "expected an image path line", id="count-as-name"),
    ],
)
def test_malformed_files_name_file_and_line(tmp_path: Path, text: str, line: int, message: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(WiderFormatError, match=re.escape(message)) as info:
        parse_annotations(path, tmp_path)
    assert str(info.value).startswith(f"{path}:{line}: ")


def test_missing_image_is_reported_not_skipped(wider_root: Path, tmp_path: Path) -> None:
    # A copy of the fixture's val annotations plus one record whose image is not on disk.
    root = tmp_path / "widerface"
    (root / "wider_face_split").mkdir(parents=True)
    (root / "WIDER_val").symlink_to(wider_root / "WIDER_val")
    text = (wider_root / "wider_face_split" / "wider_face_val_bbx_gt.txt").read_text()
    text += "0--Parade/not_there.jpg\n1\n1 2 3 4 0 0 0 0 0 0\n"
    (root / "wider_face_split" / "wider_face_val_bbx_gt.txt").write_text(text)

    with pytest.raises(MissingImagesError, match="1 listed image") as info:
        load_wider(root, "val")
    assert [p.name for p in info.value.missing] == ["not_there.jpg"]
    assert "not_there.jpg" in str(info.value)

    samples, missing = load_wider(root, "val", allow_missing=True)
    assert len(samples) == 4 and [p.name for p in missing] == ["not_there.jpg"]


def test_fixture_tree_loads(wider_root: Path) -> None:
    samples, missing = load_wider(wider_root, "train")
    assert missing == [] and len(samples) == 8
    assert sum(len(s) for s in samples) == 12
    assert int(sum(s.invalid.sum() for s in samples)) == 1
    assert all(s.path.is_file() for s in samples)


def test_unknown_split_and_absent_annotation(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown split"):
        load_wider(tmp_path, "test")
    with pytest.raises(FileNotFoundError, match="annotation file not found"):
        load_wider(tmp_path, "train")
