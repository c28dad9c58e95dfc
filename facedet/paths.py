"""Where the shipped integer model lives. Torch-free, stdlib only.

Resolution order for the default model (first hit wins):

1. the environment variable ``FACEDET_MODEL`` (an error if it names a missing file),
2. ``weights/default.fdet`` under the current directory,
3. ``weights/default.fdet`` in the repository root (the parent of the ``facedet`` package).
"""

from __future__ import annotations

import os
from pathlib import Path

MODEL_ENV = "FACEDET_MODEL"
DEFAULT_MODEL_NAME = "default.fdet"


def repo_root() -> Path:
    """The directory that holds the ``facedet`` package (the repository root in a checkout)."""
    return Path(__file__).resolve().parent.parent


def default_model_candidates() -> list[Path]:
    """The places searched for the default model, in order (the env variable excluded)."""
    candidates = [Path.cwd() / "weights" / DEFAULT_MODEL_NAME, repo_root() / "weights" / DEFAULT_MODEL_NAME]
    unique: list[Path] = []
    for path in candidates:
        if path not in unique:
            unique.append(path)
    return unique


def default_model_path() -> Path:
    """The integer model file to use when none is given.

    Returns:
        An existing file path.

    Raises:
        FileNotFoundError: ``FACEDET_MODEL`` names a missing file, or no default model exists;
            the message lists every place searched and how to point at a model.
    """
    env = os.environ.get(MODEL_ENV, "").strip()
    if env:
        path = Path(env).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"{MODEL_ENV}={env!r} does not name an existing model file")
        return path
    candidates = default_model_candidates()
    for path in candidates:
        if path.is_file():
            return path
    searched = ", ".join(str(p) for p in candidates)
    raise FileNotFoundError(
        f"no integer model found (searched {searched}); pass --model FILE, set {MODEL_ENV}=FILE, "
        "or export one with `facedet export`"
    )
