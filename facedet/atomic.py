"""Atomic file writes: write a temporary file beside the target, then rename it into place.

A reader never sees a half-written model or checkpoint, and a crash leaves the old file intact.
Torch-free (stdlib only), shared by the model file writer and the checkpoint writer.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def write_atomically(path: str | Path, write: Callable[[str], object]) -> Path:
    """Call ``write(temp_path)``, then rename the temp file onto ``path``.

    The file gets ordinary permissions (0o666 less the umask; mkstemp alone would leave 0o600,
    which a non-root service user, e.g. in the Docker image, could not read).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    try:
        write(tmp_name)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_name, 0o666 & ~umask)
        os.replace(tmp_name, path)
    finally:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
    return path
