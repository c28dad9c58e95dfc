"""``--engine`` and ``--threads``, shared by the commands that run the integer engine.

The engine choice travels in ``FACEDET_ENGINE`` (read by ``facedet.engine.native.resolve_engine``),
so subprocesses (bench workers, uvicorn workers) inherit it. Threads default to one per process:
on a busy machine extra threads contend with other processes (measured: two threads on a busy
2-core machine made a service request take 1.3 s instead of 0.17 s); scale with processes instead.
The native engine itself is single-threaded.
"""

from __future__ import annotations

import argparse
import os

ENGINES = ("native", "numpy")
# Read by OpenBLAS/MKL/OpenMP when a process starts, and by OpenCV's thread pool.
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OPENCV_FOR_THREADS_NUM")


def add_engine_arguments(parser: argparse.ArgumentParser, threads: bool = True) -> None:
    """Add ``--engine`` (and ``--threads`` unless ``threads`` is False) to a subcommand."""
    parser.add_argument(
        "--engine",
        choices=ENGINES,
        help="integer engine: native (compiled C, the default when built) or numpy (default: FACEDET_ENGINE)",
    )
    if threads:
        parser.add_argument(
            "--threads", type=int, default=1, help="CPU threads for OpenCV and BLAS (default 1; scale with processes)"
        )


def apply_engine_arguments(args: argparse.Namespace) -> str | None:
    """Export the choices for this process and its children; an error message, or None when fine."""
    if getattr(args, "engine", None):
        os.environ["FACEDET_ENGINE"] = args.engine
    threads = getattr(args, "threads", None)
    if threads is None:
        return None
    if threads < 1:
        return f"--threads must be >= 1, got {threads}"
    import cv2

    for var in THREAD_VARS:
        os.environ[var] = str(threads)
    cv2.setNumThreads(threads)
    return None
