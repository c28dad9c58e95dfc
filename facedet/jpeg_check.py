"""Is a JPEG file damaged? libjpeg-turbo's own verdict where it is built, else a structural scan.

libjpeg only *warns* about damaged entropy-coded data ("Corrupt JPEG data: bad Huffman code",
"premature end of data segment", "N extraneous bytes before marker") and returns an image with
grey or garbled blocks; ``cv2.imdecode`` prints those warnings to stderr and gives no way to see
them. ``facedet._jpegcheck`` (csrc/jpegcheck/, built by ``pip install`` where the libjpeg headers
exist) runs the system libjpeg-turbo's entropy decoder over the bytes and collects its warnings.
Without it, ``facedet.jpeg_scan.structural_damage`` checks the marker structure only (it sees far
less: ``scripts/bench_jpeg_damage.py`` measures both), and this is said once in the log.

Neither check sees every damage: a flipped bit inside a Huffman code that still decodes to valid
codes and ends the scan on time changes pixels without any warning.
"""

from __future__ import annotations

import importlib
import logging
from types import ModuleType

from facedet.jpeg_scan import structural_damage

_libjpeg: ModuleType | None
try:
    _libjpeg = importlib.import_module("facedet._jpegcheck")  # a C extension (no stub)
except ImportError:  # not built (no libjpeg headers or no compiler at install time)
    _libjpeg = None

log = logging.getLogger(__name__)
_warned = False


def libjpeg_check_built() -> bool:
    """Whether the libjpeg check (``facedet._jpegcheck``) is built; else the structural scan runs."""
    return _libjpeg is not None


def jpeg_damage(data: bytes) -> str | None:
    """One line saying why the JPEG ``data`` is damaged, or None when no damage is found.

    With the libjpeg check: libjpeg's first warning and their count ("libjpeg: Corrupt JPEG data:
    bad Huffman code (3 warnings)"), or its fatal error ("libjpeg error: ..."); a JPEG of a kind the
    system libjpeg cannot decode (12-bit, lossless) gives None and is left to the decoder.
    The GIL is released while libjpeg runs.
    """
    if _libjpeg is not None:
        result: str | None = _libjpeg.damage(data)
        return result
    _warn_once()
    return structural_damage(data)


def _warn_once() -> None:
    global _warned
    if not _warned:
        _warned = True
        log.warning(
            "the libjpeg check of JPEG data is not built (no libjpeg headers at install?); "
            "damaged JPEGs are found by a structural scan only, which sees far less damage"
        )
