"""A JPEG's layout (frame size, first scan) and a structural check of its scans (numpy, no decoding).

``jpeg_frame`` walks the marker segments up to the first scan: the frame size (SOFn) and where the
entropy-coded data starts, a few hundred bytes read at most.

``structural_damage`` is the fallback of ``facedet.jpeg_check`` where the libjpeg check is not
built. Inside entropy-coded data a 0xFF byte is always followed by 0x00 (a stuffed byte), a restart
marker RST0-7 in cyclic order, or another 0xFF (fill); anything else ends the scan, and what follows
must be a well-formed marker segment, another scan, or the end-of-image marker. Only damage that
breaks these rules is seen: in the scan data of faces_640x480.jpg it flags 16 of 200 random 16-byte
overwrites and 1 of 200 single bit flips, where libjpeg's own warnings (``facedet._jpegcheck``)
flag 135 and 43 (``scripts/bench_jpeg_damage.py``).

Cost: one vectorised pass over the bytes (about 0.1 ms for a 60 KB photo).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

_RST = range(0xD0, 0xD8)
_SOS, _EOI = 0xDA, 0xD9
_SEGMENT_MARKERS = {0xC4, 0xCC, 0xDB, 0xDD, 0xDE, 0xDF, 0xFE, *range(0xE0, 0xF0)}  # between scans
_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


@dataclass(frozen=True)
class JpegFrame:
    """What the markers before the first scan say: pixel size and the first entropy-coded byte."""

    width: int
    height: int
    scan_start: int  # offset of the first byte of entropy-coded data after the first SOS segment


def jpeg_frame(data: bytes) -> JpegFrame:
    """Walk the marker segments (FF xx, then a big-endian length that counts itself) to the first scan.

    Raises:
        ValueError: one line saying where the header is truncated or inconsistent (also a file with
            no end-of-image marker after its first scan: it was cut short).
    """
    pos, size = 2, len(data)
    width = height = 0
    while True:
        while pos < size and data[pos] == 0xFF and pos + 1 < size and data[pos + 1] == 0xFF:
            pos += 1  # fill bytes
        if pos + 2 > size:
            raise ValueError("the header ends before the image data")
        if data[pos] != 0xFF:
            raise ValueError(f"bad marker at byte {pos}")
        marker = data[pos + 1]
        pos += 2
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:  # standalone markers carry no length
            continue
        if marker == _EOI:
            raise ValueError("end-of-image marker before any frame header")
        if pos + 2 > size:
            raise ValueError("the header ends inside a segment")
        (length,) = struct.unpack(">H", data[pos : pos + 2])
        if length < 2:
            raise ValueError(f"segment length {length} at byte {pos}")
        if marker in _JPEG_SOF:
            if pos + 7 > size:
                raise ValueError("the header ends inside the frame header")
            height, width = struct.unpack(">HH", data[pos + 3 : pos + 7])
        elif marker == _SOS:  # entropy-coded data follows
            if width == 0 or height == 0:
                raise ValueError("no frame header (or zero size) before the scan")
            # FF D9 cannot occur inside entropy-coded data (0xFF is stuffed as FF 00), so its
            # presence after the first scan means the data runs to the end of the image.
            if data.find(b"\xff\xd9", pos) < 0:
                raise ValueError("no end-of-image marker (the file was cut short)")
            return JpegFrame(int(width), int(height), scan_start=pos + length)
        pos += length


def structural_damage(data: bytes) -> str | None:
    """What is wrong with the layout or the scan structure of a JPEG file, or None."""
    try:
        frame = jpeg_frame(data)
    except ValueError as exc:
        return str(exc)
    return jpeg_scan_problem(data, frame.scan_start)


def _scan_end(array: np.ndarray, start: int) -> tuple[int, str | None]:
    """(index of the 0xFF that ends the scan starting at ``start``, problem or None)."""
    ff = np.flatnonzero(array[start:-1] == 0xFF) + start
    following = array[ff + 1]
    ends = np.flatnonzero((following != 0x00) & (following != 0xFF) & ((following < 0xD0) | (following > 0xD7)))
    if ends.size == 0:
        return len(array), "the scan data runs to the end of the file without an end marker"
    end = int(ff[ends[0]])
    restarts = following[: ends[0]]
    restarts = restarts[(restarts >= 0xD0) & (restarts <= 0xD7)].astype(np.int64)
    if restarts.size and np.any(np.diff(restarts) % 8 != 1) or (restarts.size and restarts[0] != 0xD0):
        return end, "restart markers out of sequence inside the scan data"
    return end, None


def jpeg_scan_problem(data: bytes, scan_start: int) -> str | None:
    """What is structurally wrong with the scans of a JPEG, or None.

    Args:
        data: the whole file.
        scan_start: offset of the first byte of entropy-coded data after the first SOS segment.
    """
    array = np.frombuffer(data, np.uint8)
    pos = scan_start
    for _ in range(256):  # progressive JPEGs have ~10 scans; more than this is not a photo
        end, problem = _scan_end(array, pos)
        if problem:
            return f"{problem} (scan at byte {pos})"
        while True:  # marker segments up to the next scan or the end of the image
            marker = int(array[end + 1])
            if marker == _EOI:
                return None
            if marker != _SOS and marker not in _SEGMENT_MARKERS:
                return f"unexpected marker 0xFF{marker:02X} after the scan data at byte {end}"
            if end + 4 > len(array):
                return f"segment 0xFF{marker:02X} at byte {end} is cut short"
            length = int(array[end + 2]) << 8 | int(array[end + 3])
            after = end + 2 + length
            if length < 2 or after + 1 >= len(array):
                return f"segment 0xFF{marker:02X} at byte {end} has an impossible length {length}"
            if marker == _SOS:
                pos = after
                break
            if array[after] != 0xFF:
                return f"no marker after the segment ending at byte {after}"
            end = after
    return "more than 256 scans"
