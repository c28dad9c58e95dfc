"""The integer model file (``.fdet``): one self-describing, checksummed file per model.

Torch-free (stdlib + numpy). Layout, all integers little-endian:

    offset 0   b"FDET"                       magic
           4   uint32 format version
           8   uint32 manifest length M (bytes)
          12   manifest: compact UTF-8 JSON, M bytes
      12 + M   array blob: the arrays back to back, in manifest order, no padding
         end   32-byte sha256 of every byte before it

The manifest holds the format version (again), the model config (``ModelConfig.to_dict()``),
input size, pixel scaling, anchors, stride, the ordered layer table (each layer names its arrays),
an ``arrays`` table ``[name, dtype, shape, offset]`` and optional ``metrics``/``provenance`` dicts.

Boolean arrays (binary weights as ``w > 0``, per-channel comparison directions) are stored
bit-packed with ``np.packbits`` (1 bit per value, ``ceil(n / 8)`` bytes) under dtype ``"bits"``
and read back as bool. Everything else is stored raw (int8, int16, int32, float32, ...). So the
blob is exactly the stored bytes counted by ``facedet.model_summary``; the file adds only the
44-byte frame and the manifest.
"""

from __future__ import annotations

import hashlib
import json
import math
import struct
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from facedet.atomic import write_atomically

MAGIC = b"FDET"
FORMAT_VERSION = 1
SUFFIX = ".fdet"
_HEADER = struct.Struct("<4sII")  # magic, format version, manifest length
_DIGEST = 32  # sha256
BITS = "bits"  # dtype tag of bit-packed boolean arrays
# Raw dtypes a file may hold; anything else in a manifest means a corrupt or foreign file.
_RAW_DTYPES = ("int8", "uint8", "int16", "int32", "int64", "float32", "float64")


class ModelFileError(ValueError):
    """A model file that is missing, truncated, corrupted, foreign or from a newer facedet."""


def _encode(name: str, array: NDArray[Any]) -> tuple[str, bytes]:
    """(dtype tag, bytes) of one array: bool -> packed bits, else raw little-endian."""
    if array.dtype == np.bool_:
        return BITS, np.packbits(array.reshape(-1)).tobytes()
    dtype = array.dtype.newbyteorder("<")
    if dtype.name not in _RAW_DTYPES:
        raise ValueError(f"array {name!r}: unsupported dtype {array.dtype}")
    return dtype.name, np.ascontiguousarray(array, dtype=dtype).tobytes()


def _table_entry(entry: Any) -> tuple[str, list[int]]:
    """(dtype, shape) of one ``[name, dtype, shape, offset]`` row, checked before any size is computed."""
    name, dtype, shape, offset = entry
    if not isinstance(name, str) or (dtype != BITS and dtype not in _RAW_DTYPES):
        raise ValueError(f"array table row {entry!r}: bad name or dtype")
    valid_dims = isinstance(shape, list) and len(shape) <= 8
    if not valid_dims or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape):
        raise ValueError(f"array {name!r}: shape {shape!r} is not a list of at most 8 non-negative integers")
    if isinstance(offset, bool) or not isinstance(offset, int):
        raise ValueError(f"array {name!r}: offset {offset!r} is not an integer")
    return dtype, shape


def _nbytes(dtype: str, shape: list[int]) -> int:
    count = math.prod(shape)
    return math.ceil(count / 8) if dtype == BITS else count * np.dtype(dtype).itemsize


def encode_model_file(manifest: dict[str, Any], arrays: dict[str, NDArray[Any]]) -> bytes:
    """The bytes of a model file (see the module docstring); ``manifest`` is not modified.

    Args:
        manifest: JSON-serializable dict (layer table, config, ...). The keys ``format_version``
            and ``arrays`` are filled in here.
        arrays: name -> array, written in this order.
    """
    table: list[list[Any]] = []
    chunks: list[bytes] = []
    offset = 0
    for name, array in arrays.items():
        array = np.asarray(array)
        dtype, data = _encode(name, array)
        table.append([name, dtype, list(array.shape), offset])
        chunks.append(data)
        offset += len(data)
    full = {**manifest, "format_version": FORMAT_VERSION, "arrays": table}
    # Compact separators: the manifest is file overhead, and the DupNet file has a byte budget.
    text = json.dumps(full, separators=(",", ":"), allow_nan=False).encode("utf-8")
    body = _HEADER.pack(MAGIC, FORMAT_VERSION, len(text)) + text + b"".join(chunks)
    return body + hashlib.sha256(body).digest()


def write_model_file(path: str | Path, manifest: dict[str, Any], arrays: dict[str, NDArray[Any]]) -> Path:
    """Write a model file atomically (temp file + rename) and return its path."""
    data = encode_model_file(manifest, arrays)
    return write_atomically(path, lambda tmp: Path(tmp).write_bytes(data))


def is_model_file(path: str | Path) -> bool:
    """True when the file exists and starts with the FDET magic (no validation beyond that)."""
    try:
        with open(path, "rb") as handle:
            return handle.read(4) == MAGIC
    except OSError:
        return False


def decode_model_file(data: bytes, source: str = "<bytes>") -> tuple[dict[str, Any], dict[str, NDArray[Any]]]:
    """Parse and validate model file bytes; ``source`` names the file in error messages.

    Returns:
        (manifest, arrays): arrays are fresh (writable) numpy arrays with their stored shapes;
        bit-packed arrays come back as bool.

    Raises:
        ModelFileError: wrong magic, newer format version, truncated, checksum mismatch or an
            inconsistent manifest.
    """
    if len(data) < _HEADER.size:
        raise ModelFileError(f"{source}: truncated model file ({len(data)} bytes, shorter than the header)")
    magic, version, manifest_len = _HEADER.unpack_from(data)
    if magic != MAGIC:
        raise ModelFileError(f"{source}: not a facedet model file (magic {magic!r}, expected {MAGIC!r})")
    if version > FORMAT_VERSION:
        raise ModelFileError(
            f"{source}: model file format version {version} is newer than this facedet reads "
            f"({FORMAT_VERSION}); upgrade facedet"
        )
    if version < 1:
        raise ModelFileError(f"{source}: invalid model file format version {version}")
    if len(data) < _HEADER.size + manifest_len + _DIGEST:
        raise ModelFileError(f"{source}: truncated model file ({len(data)} bytes; the manifest alone needs more)")
    body, digest = data[:-_DIGEST], data[-_DIGEST:]
    checksum_ok = hashlib.sha256(body).digest() == digest
    try:
        manifest = json.loads(data[_HEADER.size : _HEADER.size + manifest_len].decode("utf-8"))
        table = manifest["arrays"]
        sizes = [_nbytes(*_table_entry(entry)) for entry in table]
    except (ValueError, KeyError, TypeError) as exc:
        reason = "truncated or corrupted" if not checksum_ok else "corrupted"
        raise ModelFileError(f"{source}: {reason} model file (unreadable manifest: {exc})") from exc
    blob_start = _HEADER.size + manifest_len
    expected = blob_start + sum(sizes) + _DIGEST
    if len(data) != expected and checksum_ok:  # intact bytes: the manifest itself is wrong
        raise ModelFileError(
            f"{source}: inconsistent model file: its array table describes {sum(sizes)} bytes of arrays, "
            f"the file holds {len(data) - blob_start - _DIGEST}"
        )
    if len(data) < expected:
        raise ModelFileError(f"{source}: truncated model file ({len(data)} of {expected} bytes)")
    if len(data) > expected:
        raise ModelFileError(f"{source}: corrupted model file ({len(data) - expected} unexpected trailing bytes)")
    if not checksum_ok:
        raise ModelFileError(f"{source}: corrupted model file (sha256 checksum mismatch)")
    arrays: dict[str, NDArray[Any]] = {}
    position = 0
    for (name, dtype, shape, offset), size in zip(table, sizes, strict=True):
        if offset != position:
            raise ModelFileError(f"{source}: corrupted array table (array {name!r} at {offset}, expected {position})")
        raw = data[blob_start + offset : blob_start + offset + size]
        if dtype == BITS:
            count = math.prod(shape)
            arrays[name] = np.unpackbits(np.frombuffer(raw, np.uint8), count=count).astype(bool).reshape(shape)
        elif dtype in _RAW_DTYPES:
            arrays[name] = np.frombuffer(raw, np.dtype(dtype).newbyteorder("<")).astype(dtype).reshape(shape)
        else:
            raise ModelFileError(f"{source}: array {name!r} has unknown dtype {dtype!r}")
        position += size
    return manifest, arrays


def read_model_file(path: str | Path) -> tuple[dict[str, Any], dict[str, NDArray[Any]]]:
    """Read and validate a model file: (manifest, arrays). See ``decode_model_file``.

    Raises:
        ModelFileError: missing or unreadable file, or any defect ``decode_model_file`` finds.
    """
    return decode_model_file(read_model_bytes(path), str(path))


def read_model_bytes(path: str | Path) -> bytes:
    """The raw bytes of a model file; a missing or unreadable file is a ``ModelFileError``."""
    path = Path(path)
    try:
        return path.read_bytes()
    except FileNotFoundError as exc:
        raise ModelFileError(f"{path}: no such model file") from exc
    except IsADirectoryError as exc:
        raise ModelFileError(f"{path}: is a directory, not a model file") from exc
    except OSError as exc:
        raise ModelFileError(f"{path}: cannot read model file: {exc}") from exc


def array_nbytes(manifest: dict[str, Any]) -> dict[str, int]:
    """Stored bytes of each array named in a manifest's array table."""
    return {name: _nbytes(dtype, shape) for name, dtype, shape, _ in manifest["arrays"]}
