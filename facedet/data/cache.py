"""Decoded-image cache: every JPEG is decoded once into one uint8 memmap file + an index JSON.

Two CPU cores cannot afford to re-decode (and re-shrink) each JPEG every epoch. The cache stores
each image's BGR pixels, optionally shrunk so that its longest side is at most ``max_side``, back
to back in ``<cache_dir>/<name>-<key>.u8``; ``<name>-<key>.json`` holds the offsets and shapes.
The key hashes the file list, each file's size and mtime, and ``max_side``: a changed dataset gets
a new key, so a stale cache is never read, and older caches of the same name are removed.

Torch-free (numpy + cv2). Opening is lazy, so a dataset holding an ``ImageCache`` pickles small
(DataLoader workers under spawn) and each process maps the file itself.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

log = logging.getLogger(__name__)
CACHE_VERSION = 1


class ImageDecodeError(OSError):
    """An image file that OpenCV cannot decode."""


def default_cache_dir() -> Path:
    """``$FACEDET_CACHE``, else ``$XDG_CACHE_HOME/facedet`` (``~/.cache/facedet``).

    Never next to the data set: data folders are often read-only or shared. The cache key holds
    the resolved image paths, so several data roots share one cache folder safely.
    """
    if os.environ.get("FACEDET_CACHE"):
        return Path(os.environ["FACEDET_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "facedet"


def cache_key(paths: Sequence[Path], max_side: int) -> str:
    """sha256 over (version, max_side, each path, its size and mtime in ns)."""
    digest = hashlib.sha256(f"v{CACHE_VERSION}|{max_side}".encode())
    for p in paths:
        st = os.stat(p)
        digest.update(f"|{Path(p).resolve()}|{st.st_size}|{st.st_mtime_ns}".encode())
    return digest.hexdigest()[:20]


def _decode(path: Path, max_side: int) -> tuple[NDArray[np.uint8], tuple[int, int]]:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise ImageDecodeError(f"{path}: cannot decode image")
    height, width = image.shape[:2]
    scale = max_side / max(height, width)
    if scale < 1:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(image), (height, width)


class ImageCache:
    """Read-only access to cached images by index (the order of the path list it was built from).

    Use ``ImageCache.build(paths, cache_dir, name, max_side)``: it opens a fresh cache or builds one.
    """

    def __init__(self, data_file: Path, index: dict) -> None:
        self.data_file = data_file
        self.entries: list[dict] = index["entries"]
        self.total_bytes = int(index["total_bytes"])
        self._data: np.memmap | None = None

    @classmethod
    def build(cls, paths: Sequence[str | Path], cache_dir: str | Path, name: str, max_side: int = 640) -> ImageCache:
        """Open the cache of ``paths`` in ``cache_dir``, (re)building it if missing or stale.

        Args:
            paths: image files; cache index i is ``paths[i]``.
            cache_dir: where the ``.u8`` and ``.json`` files live (created if needed).
            name: file name prefix (e.g. ``"wider-train"``).
            max_side: images whose longest side exceeds this are shrunk to it (INTER_AREA).
        """
        paths = [Path(p) for p in paths]
        cache_dir = Path(cache_dir)
        cache_dir.mkdir(parents=True, exist_ok=True)
        key = cache_key(paths, max_side)
        data_file = cache_dir / f"{name}-{key}.u8"
        index_file = cache_dir / f"{name}-{key}.json"
        if data_file.is_file() and index_file.is_file():
            index = json.loads(index_file.read_text())
            if index.get("key") == key and data_file.stat().st_size == index["total_bytes"]:
                return cls(data_file, index)
        for old in cache_dir.glob(f"{name}-*"):  # stale caches of the same name
            if old.suffix in (".u8", ".json") and old.stem.rsplit("-", 1)[0] == name:
                old.unlink(missing_ok=True)
        log.info("building image cache %s (%d images)", data_file, len(paths))
        entries: list[dict] = []
        offset = 0
        tmp_data = data_file.with_name(f".{data_file.name}.{os.getpid()}.tmp")
        try:
            with open(tmp_data, "wb") as handle:
                for p in paths:
                    image, original = _decode(p, max_side)
                    handle.write(image.tobytes())
                    entries.append(
                        {"path": str(p), "offset": offset, "shape": list(image.shape), "original_shape": list(original)}
                    )
                    offset += image.nbytes
            os.replace(tmp_data, data_file)
        finally:
            tmp_data.unlink(missing_ok=True)
        index = {"version": CACHE_VERSION, "key": key, "max_side": max_side, "total_bytes": offset, "entries": entries}
        tmp_index = index_file.with_name(f".{index_file.name}.{os.getpid()}.tmp")
        tmp_index.write_text(json.dumps(index))
        os.replace(tmp_index, index_file)
        return cls(data_file, index)

    def __len__(self) -> int:
        return len(self.entries)

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_data"] = None  # each process maps the file itself
        return state

    def _map(self) -> np.memmap:
        if self._data is None:
            self._data = np.memmap(self.data_file, dtype=np.uint8, mode="r", shape=(max(self.total_bytes, 1),))
        return self._data

    def get(self, index: int) -> NDArray[np.uint8]:
        """(H, W, 3) uint8 BGR image (a read-only view into the memmap)."""
        entry = self.entries[index]
        height, width, channels = entry["shape"]
        start = entry["offset"]
        return self._map()[start : start + height * width * channels].reshape(height, width, channels)

    def shape(self, index: int) -> tuple[int, int]:
        """(height, width) of the cached image."""
        height, width, _ = self.entries[index]["shape"]
        return int(height), int(width)
