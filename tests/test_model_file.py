"""The .fdet container: round trip, bit packing, size accounting, and rejection of bad files."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from facedet.engine import IntEngine
from facedet.model_file import (
    FORMAT_VERSION,
    ModelFileError,
    array_nbytes,
    decode_model_file,
    encode_model_file,
    read_model_file,
    write_model_file,
)
from facedet.model_summary import summarize, totals
from facedet.testing import tiny_config, write_random_model


def _arrays() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "bits": rng.random((5, 3, 3, 3)) > 0.5,  # 135 bits -> 17 bytes
        "i8": rng.integers(-127, 128, (4, 3), dtype=np.int8),
        "i16": rng.integers(-3000, 3000, (7, 3)).astype(np.int16),
        "i32": rng.integers(-(2**30), 2**30, (2, 5)).astype(np.int32),
        "f32": rng.standard_normal(6).astype(np.float32),
    }


def test_round_trip(tmp_path: Path) -> None:
    arrays = _arrays()
    path = write_model_file(tmp_path / "m.fdet", {"name": "x", "layers": [], "metrics": {"fddb": 0.9}}, arrays)
    manifest, back = read_model_file(path)
    assert manifest["format_version"] == FORMAT_VERSION
    assert manifest["metrics"] == {"fddb": 0.9}
    assert list(back) == list(arrays)
    for name, array in arrays.items():
        assert back[name].dtype == array.dtype and np.array_equal(back[name], array), name
    sizes = array_nbytes(manifest)
    assert sizes["bits"] == 17 and sizes["i16"] == 42 and sizes["f32"] == 24
    # the frame is 12 header bytes + manifest + blob + 32 checksum bytes, nothing else
    manifest_len = struct.unpack_from("<I", path.read_bytes(), 8)[0]
    assert path.stat().st_size == 12 + manifest_len + sum(sizes.values()) + 32


def test_random_model_stored_bytes_match_summary(tmp_path: Path) -> None:
    config = tiny_config()
    engine = IntEngine.load(write_random_model(tmp_path / "r.fdet", config))
    assert engine.stored_bytes == totals(summarize(config))["stored_bytes"]
    assert engine.macs == totals(summarize(config))["macs"]
    assert engine.info["file_bytes"] == (tmp_path / "r.fdet").stat().st_size


def test_same_seed_same_bytes(tmp_path: Path) -> None:
    a = write_random_model(tmp_path / "a.fdet", seed=3).read_bytes()
    b = write_random_model(tmp_path / "b.fdet", seed=3).read_bytes()
    assert a == b


@pytest.fixture()
def model_bytes(tmp_path: Path) -> bytes:
    return write_random_model(tmp_path / "m.fdet").read_bytes()


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match="nope.fdet: no such model file"):
        read_model_file(tmp_path / "nope.fdet")
    with pytest.raises(ModelFileError, match="no such model file"):
        IntEngine.load(tmp_path / "nope.fdet")


@pytest.mark.parametrize("keep", [0, 7, 12, 40, -33, -1])
def test_truncated(tmp_path: Path, model_bytes: bytes, keep: int) -> None:
    path = tmp_path / "cut.fdet"
    path.write_bytes(model_bytes[:keep] if keep >= 0 else model_bytes[: len(model_bytes) + keep])
    with pytest.raises(ModelFileError, match=r"cut\.fdet: .*truncated"):
        IntEngine.load(path)


@pytest.mark.parametrize("where", ["manifest", "blob", "checksum"])
def test_corrupted(tmp_path: Path, model_bytes: bytes, where: str) -> None:
    data = bytearray(model_bytes)
    manifest_len = struct.unpack_from("<I", data, 8)[0]
    index = {"manifest": 12 + manifest_len // 2, "blob": 12 + manifest_len + 5, "checksum": len(data) - 3}[where]
    data[index] ^= 0x10
    path = tmp_path / "bad.fdet"
    path.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match=r"bad\.fdet: .*corrupted"):
        read_model_file(path)


def test_trailing_bytes_rejected(model_bytes: bytes) -> None:
    with pytest.raises(ModelFileError, match="trailing"):
        decode_model_file(model_bytes + b"\0")


def test_wrong_magic(tmp_path: Path, model_bytes: bytes) -> None:
    path = tmp_path / "x.fdet"
    path.write_bytes(b"PK\x03\x04" + model_bytes[4:])
    with pytest.raises(ModelFileError, match="not a facedet model file"):
        IntEngine.load(path)


def test_newer_version_rejected(tmp_path: Path) -> None:
    data = bytearray(encode_model_file({"layers": []}, {}))
    struct.pack_into("<I", data, 4, FORMAT_VERSION + 1)
    path = tmp_path / "new.fdet"
    path.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match=rf"new\.fdet: .*version {FORMAT_VERSION + 1} is newer"):
        read_model_file(path)


def test_unsupported_dtype() -> None:
    with pytest.raises(ValueError, match="unsupported dtype"):
        encode_model_file({}, {"c": np.zeros(2, np.complex64)})
