"""What every subcommand shares: the one-line user error, argument types, early checks. Stdlib only.

Every CLI error is one line on stderr, ``facedet <command>: error: <what was wrong and where>``,
and exit code 2 (``facedet.cli.main`` prints it). Commands check their arguments with these
helpers before any slow work (loading data, building caches, running models).
"""

from __future__ import annotations

import argparse
import importlib
import os
from pathlib import Path

DIST_NAME = "facedet-tiny"  # the name on the package index (``facedet`` there is another project)

# Which extra provides a missing import, for the "install ..." hint.
EXTRA_OF_MODULE = {
    "torch": "train",
    "albumentations": "train",
    "pycocotools": "eval",
    "scipy": "eval",
    "matplotlib": "eval",
    "fastapi": "serve",
    "uvicorn": "serve",
    "pydantic": "serve",
    "pydantic_settings": "serve",
    "multipart": "serve",
    "fastapi_offline": "serve",
    "pygame": "camera",
    "onnxruntime": "onnx",
    "onnx": "onnx",
}


class UsageError(Exception):
    """A user mistake (bad argument, missing file, missing extra): one line, exit code 2."""


def install_hint(extra: str) -> str:
    """``pip install 'facedet-tiny[EXTRA]'`` (and the editable form for a clone)."""
    return f"install it with: pip install '{DIST_NAME}[{extra}]' (in a clone: pip install -e '.[{extra}]')"


def missing_module_message(exc: ImportError) -> str:
    """One line for an ImportError: which package is missing and which extra brings it."""
    module = (exc.name or "").split(".")[0]
    extra = EXTRA_OF_MODULE.get(module)
    if extra is None:
        return f"missing Python package {module or exc}"
    return f"this needs {module}, which is in the [{extra}] extra; {install_hint(extra)}"


def require_extra(extra: str, module: str, what: str) -> None:
    """Raise ``UsageError`` if ``module`` cannot be imported: ``what`` needs the ``extra`` extra."""
    try:
        importlib.import_module(module)
    except ImportError:
        raise UsageError(
            f"{what} needs the [{extra}] extra ({module} is not installed); {install_hint(extra)}"
        ) from None


def score(text: str) -> float:
    """argparse type: a score in [0, 1]."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text}")
    return value


def existing_dir(path: str | Path, flag: str) -> Path:
    """``path`` if it is a folder, else ``UsageError`` naming the flag."""
    folder = Path(path)
    if not folder.is_dir():
        raise UsageError(f"{flag} {folder}: no such folder")
    return folder


def writable_dir(path: str | Path, flag: str) -> Path:
    """Create ``path`` (and parents) if needed and check it can be written, before any work."""
    folder = Path(path)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"{flag} {folder}: cannot create the folder ({exc.strerror or exc})") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UsageError(f"{flag} {folder}: folder is not writable")
    return folder


def writable_file(path: str | Path, flag: str) -> Path:
    """Check that ``path``'s folder exists (or can be made) and is writable, and it is not a folder."""
    target = Path(path)
    if target.is_dir():
        raise UsageError(f"{flag} {target}: is a folder, give a file name")
    writable_dir(target.parent if str(target.parent) else Path("."), flag)
    return target


def check_img_size(img_size: int | None, stride: int = 32) -> None:
    """``--img-size`` must be a positive multiple of the network stride."""
    if img_size is not None and (img_size < stride or img_size % stride):
        raise UsageError(f"--img-size {img_size}: must be a positive multiple of the stride {stride} (e.g. 416)")
