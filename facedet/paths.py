"""Which model file a user means: a path, a model name, or nothing (the default). Stdlib only.

This module is the one place that reads the model environment variable ``FACEDET_MODEL``; the
command line, the Python API and the service all resolve models through ``resolve_model``.

Resolution of ``resolve_model(spec)``:

1. ``spec`` names an existing file -> that file;
2. ``spec`` is a model name (``dupnet-tinier-yolo``, ``ifq-tinier-yolo``, ``default``, any
   ``NAME`` with a ``NAME.fdet`` below) -> the first ``NAME.fdet`` in ``./weights/``, the
   repository's ``weights/`` (in a clone), then the package's own ``facedet/weights/`` (in a
   pip install, where the small integer models ship as package data);
3. ``spec`` is None -> ``FACEDET_MODEL`` (a path or a name) if set, else the name ``default``
   (the best shipped integer model by FDDB TPR@1000FP).
"""

from __future__ import annotations

import os
from pathlib import Path

MODEL_ENV = "FACEDET_MODEL"
DEFAULT_NAME = "default"
MODEL_SUFFIX = ".fdet"
# Integer models that ship inside the package (facedet/weights/); the 16 MB Tiny-YOLO int8 file does not.
PACKAGED_MODELS = ("dupnet-tinier-yolo", "ifq-tinier-yolo")


def repo_root() -> Path:
    """The directory that holds the ``facedet`` package (the repository root in a checkout)."""
    return Path(__file__).resolve().parent.parent


def package_weights_dir() -> Path:
    """``facedet/weights``: the packaged integer models (symbolic links in a clone, files in a wheel)."""
    return Path(__file__).resolve().parent / "weights"


def weights_dirs() -> list[Path]:
    """Folders searched for ``NAME.fdet``, in order, without duplicates."""
    unique: list[Path] = []
    for path in (Path.cwd() / "weights", repo_root() / "weights", package_weights_dir()):
        if path not in unique:
            unique.append(path)
    return unique


def is_model_name(text: str) -> bool:
    """A bare name such as ``dupnet-tinier-yolo`` (no folder, no suffix), as opposed to a path."""
    return bool(text) and "/" not in text and "\\" not in text and "." not in text


def available_models() -> list[str]:
    """Names ``resolve_model`` accepts here (every ``*.fdet`` in the searched folders), sorted."""
    names = {p.stem for folder in weights_dirs() if folder.is_dir() for p in folder.glob("*" + MODEL_SUFFIX)}
    return sorted(names)


def find_named_model(name: str) -> Path | None:
    """The first existing ``NAME.fdet`` in ``weights_dirs()``, or None."""
    for folder in weights_dirs():
        candidate = folder / (name + MODEL_SUFFIX)
        if candidate.is_file():
            return candidate
    return None


def resolve_model(spec: str | Path | None = None) -> Path:
    """The model file for a path, a model name, or None (``FACEDET_MODEL``, then the default).

    Returns:
        An existing file path (not checked to be a valid model: the loaders do that).

    Raises:
        FileNotFoundError: one line saying what was asked for, where it was looked for and what
            names exist.
        IsADirectoryError: ``spec`` (or ``FACEDET_MODEL``) names a folder, not a model file.
    """
    origin = ""
    if spec is None or str(spec).strip() == "":
        env = os.environ.get(MODEL_ENV, "").strip()
        spec, origin = (env, f"{MODEL_ENV}=") if env else (DEFAULT_NAME, "")
    text = str(spec)
    path = Path(text).expanduser()
    if path.is_file():
        return path
    if path.is_dir():  # before the name lookup: ``weights`` is a folder here, not a model name
        raise IsADirectoryError(f"{origin}{text}: is a directory; name a model file (.fdet or .pt) inside it")
    if is_model_name(text):
        found = find_named_model(text)
        if found is not None:
            return found
        names = ", ".join(available_models()) or "none"
        where = ", ".join(str(d) for d in weights_dirs())
        raise FileNotFoundError(
            f"{origin}{text}: no such model file or model name (names here: {names}; searched {where}); "
            "pass --model FILE or a name, or export one with `facedet export`"
        )
    raise FileNotFoundError(f"{origin}{text}: no such model file")


def default_model_path() -> Path:
    """``resolve_model(None)``: ``FACEDET_MODEL`` if set, else the shipped default model."""
    return resolve_model(None)
