"""glibc malloc settings for the service process (issue 14, item 5: memory growth under load).

Measured (640x480 JPEG, 1 worker, concurrency 32, native engine): with glibc's defaults the RSS of
``facedet serve`` grew without levelling off under load. Two glibc behaviours together cause it:

- one malloc arena per thread that allocates, up to 8 per core: the detections ran on whichever of
  anyio's (up to 40) worker threads was free, so each arena in turn grew to the peak working set of
  a detection (decoded image, letterboxed copy, native layer buffers: a few MB each), and memory
  freed inside a non-main arena is rarely given back to the system;
- the dynamic mmap threshold: buffers over 128 KiB start as mmap (returned to the system on
  free), but freeing one raises the threshold to its size (up to 32 MiB), so from then on the
  image-sized buffers are carved from the arenas as well and fragment them.

``tune_malloc`` caps the arenas and fixes the mmap threshold (which also turns the dynamic
adjustment off), so image-sized buffers go straight back to the system when freed. It is applied
once per process at app creation (``Settings.malloc_tuning``); an explicit ``MALLOC_ARENA_MAX`` or
``MALLOC_MMAP_THRESHOLD_`` in the environment wins. Elsewhere than glibc (musl, macOS) it does nothing.
"""

from __future__ import annotations

import ctypes
import os
import platform

M_MMAP_THRESHOLD = -3  # mallopt parameter numbers, from glibc's <malloc.h>
M_ARENA_MAX = -8
ARENA_MAX = 2
MMAP_THRESHOLD_BYTES = 128 * 1024  # glibc's initial value, kept fixed: larger blocks are mmap'ed


def tune_malloc(arena_max: int = ARENA_MAX, mmap_threshold: int = MMAP_THRESHOLD_BYTES) -> dict[str, int]:
    """Cap glibc's malloc arenas and fix its mmap threshold for this process.

    Returns:
        The mallopt parameters set (name -> value); empty when not on glibc or when the
        environment already sets them.
    """
    if platform.libc_ver()[0] != "glibc":
        return {}
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the process's own C library
    except (OSError, AttributeError):
        return {}
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    wanted = {"M_ARENA_MAX": (M_ARENA_MAX, arena_max, "MALLOC_ARENA_MAX")}
    wanted["M_MMAP_THRESHOLD"] = (M_MMAP_THRESHOLD, mmap_threshold, "MALLOC_MMAP_THRESHOLD_")
    applied = {}
    for name, (param, value, env_name) in wanted.items():
        if env_name not in os.environ and mallopt(param, value) == 1:  # mallopt returns 1 on success
            applied[name] = value
    return applied
