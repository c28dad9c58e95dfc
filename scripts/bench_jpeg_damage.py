"""How much JPEG damage each check sees, and what the libjpeg check costs; prints JSON.

    PYTHONPATH=. python scripts/bench_jpeg_damage.py [--image tests/data/service/faces_640x480.jpg]

Damage, inside the entropy-coded data (first scan start .. end-of-image marker) of the image as
stored and of a progressive re-encode of it (quality 85), with a fixed seed:
- ``overwrite``: 16 random bytes written at a random offset;
- ``bitflip``: one random bit of one random byte flipped.
For each: how many the structural scan (``facedet.jpeg_scan.structural_damage``, the fallback)
flags, how many libjpeg's warnings (``facedet._jpegcheck``) flag, how many either flags, and how
many damaged files still decode to different pixels than the clean one (cv2.imdecode, which never
refuses them): those are the ones a check should catch.

Time: the median of ``--calls`` calls on the clean file, for each check and for cv2.imdecode in
the same run (the ratio is the check's cost relative to decoding, robust to a loaded machine).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np

from facedet import jpeg_check
from facedet.jpeg_scan import jpeg_frame, structural_damage

REPO = Path(__file__).resolve().parent.parent


@contextmanager
def quiet_stderr() -> Iterator[None]:
    """libjpeg inside OpenCV prints its warnings to file descriptor 2: silence them while decoding."""
    saved = os.dup(2)
    with open(os.devnull, "w") as devnull:
        os.dup2(devnull.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def damaged_copies(data: bytes, kind: str, count: int, seed: int) -> list[bytes]:
    """``count`` copies of ``data`` with one damage of ``kind`` each inside the entropy-coded data."""
    rng = np.random.default_rng(seed)
    start, end = jpeg_frame(data).scan_start, data.rfind(b"\xff\xd9")
    copies = []
    for _ in range(count):
        damaged = bytearray(data)
        if kind == "overwrite":
            offset = int(rng.integers(start, end - 16))
            damaged[offset : offset + 16] = rng.integers(0, 256, 16, dtype=np.uint8).tobytes()
        else:
            offset = int(rng.integers(start, end))
            damaged[offset] ^= 1 << int(rng.integers(0, 8))
        copies.append(bytes(damaged))
    return copies


def decoded_differs(clean: np.ndarray, data: bytes) -> bool:
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    return image is None or image.shape != clean.shape or bool(np.any(image != clean))


def detection(data: bytes, count: int, seed: int) -> dict[str, dict[str, int]]:
    libjpeg = jpeg_check._libjpeg
    clean = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    result = {}
    for kind in ("overwrite", "bitflip"):
        copies = damaged_copies(data, kind, count, seed)
        structural = [structural_damage(c) is not None for c in copies]
        warned = [libjpeg.damage(c) is not None for c in copies] if libjpeg else [False] * count
        with quiet_stderr():
            differs = [decoded_differs(clean, c) for c in copies]
        result[kind] = {
            "files": count,
            "structural_scan": sum(structural),
            "libjpeg_warnings": sum(warned) if libjpeg else -1,
            "either": sum(s or w for s, w in zip(structural, warned, strict=True)),
            "pixels_differ": sum(differs),
            "pixels_differ_unflagged": sum(
                d and not (s or w) for d, s, w in zip(differs, structural, warned, strict=True)
            ),
        }
    return result


def median_ms(call: Callable[[], object], calls: int) -> float:
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def timing(data: bytes, calls: int) -> dict[str, float]:
    buffer = np.frombuffer(data, np.uint8)
    result = {"cv2_imdecode_ms": median_ms(lambda: cv2.imdecode(buffer, cv2.IMREAD_COLOR), calls)}
    result["structural_scan_ms"] = median_ms(lambda: structural_damage(data), calls)
    if jpeg_check._libjpeg is not None:
        result["libjpeg_check_ms"] = median_ms(lambda: jpeg_check._libjpeg.damage(data), calls)
        result["libjpeg_check_over_imdecode"] = result["libjpeg_check_ms"] / result["cv2_imdecode_ms"]
    result["structural_scan_over_imdecode"] = result["structural_scan_ms"] / result["cv2_imdecode_ms"]
    return {k: round(v, 4) for k, v in result.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--image", type=Path, default=REPO / "tests" / "data" / "service" / "faces_640x480.jpg")
    parser.add_argument("--count", type=int, default=200, help="damaged copies per kind")
    parser.add_argument("--calls", type=int, default=200, help="timed calls per method")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    data = args.image.read_bytes()
    clean = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    progressive = cv2.imencode(".jpg", clean, [cv2.IMWRITE_JPEG_QUALITY, 85, cv2.IMWRITE_JPEG_PROGRESSIVE, 1])[1]
    variants = {"as_stored": data, "progressive_q85": progressive.tobytes()}
    report = {
        "image": str(args.image),
        "size": f"{clean.shape[1]}x{clean.shape[0]}",
        "bytes": len(data),
        "libjpeg_check_built": jpeg_check.libjpeg_check_built(),
        "libjpeg_version": getattr(jpeg_check._libjpeg, "LIBJPEG_VERSION", None),
        "seed": args.seed,
        "detection": {name: detection(blob, args.count, args.seed) for name, blob in variants.items()},
        "time_per_call_median": timing(data, args.calls),
        "cpu_load_1min": os.getloadavg()[0],
    }
    json.dump(report, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
