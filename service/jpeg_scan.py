"""Structural check of a JPEG's entropy-coded scans (numpy, no decoding).

libjpeg only *warns* about damaged scan data ("Corrupt JPEG data: premature end of data segment",
"bad RST marker", "N extraneous bytes before marker") and returns an image with grey or
garbled blocks; ``cv2.imdecode`` gives no way to see those warnings. Inside entropy-coded data
a 0xFF byte is always followed by 0x00 (a stuffed byte), a restart marker RST0-7 in cyclic order,
or another 0xFF (fill); anything else ends the scan, and what follows must be a well-formed
marker segment, another scan, or the end-of-image marker. Overwritten or spliced scan data breaks
these rules with near certainty; a single flipped bit inside a Huffman code does not, and only
a full decoder would see it (that would take a decoder that reports warnings, e.g. libjpeg-turbo
through ``simplejpeg.decode_jpeg(strict=True)``).

Cost: one vectorised pass over the bytes (about 0.1 ms for a 60 KB photo).
"""

from __future__ import annotations

import numpy as np

_RST = range(0xD0, 0xD8)
_SOS, _EOI = 0xDA, 0xD9
_SEGMENT_MARKERS = {0xC4, 0xCC, 0xDB, 0xDD, 0xDE, 0xDF, 0xFE, *range(0xE0, 0xF0)}  # between scans


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
