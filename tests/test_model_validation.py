"""Crafted ``.fdet`` manifests (checksum recomputed) are refused at load with one precise line,
before anything is allocated (issue 14, item 4)."""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from facedet.engine import IntEngine
from facedet.model_file import ModelFileError, encode_model_file, read_model_file
from facedet.testing import write_random_model

Manifest = dict[str, Any]
Arrays = dict[str, np.ndarray]


def _rewrite(tmp_path: Path, change: Callable[[Manifest, Arrays], None]) -> Path:
    """A valid random model, changed by ``change``, written with a correct checksum."""
    manifest, arrays = read_model_file(write_random_model(tmp_path / "ok.fdet"))
    manifest.pop("arrays")
    change(manifest, arrays)
    path = tmp_path / "crafted.fdet"
    path.write_bytes(encode_model_file(manifest, arrays))
    return path


def _layer(manifest: Manifest, index: int = 1) -> dict[str, Any]:
    return manifest["layers"][index]


def _set_input_size(size: int) -> Callable[[Manifest, Arrays], None]:
    return lambda m, a: m["input"].update(size=size)


CASES: dict[str, tuple[Callable[[Manifest, Arrays], None], str]] = {
    "dup_weight 1e9": (lambda m, a: _layer(m).update(dup_weight=10**9), r"'dup_weight' = 1000000000 is outside"),
    "input size 4,160,000": (_set_input_size(4_160_000), r"input 'size'.*within"),
    "input size 0": (_set_input_size(0), r"input 'size'.*multiple of the stride"),
    "bogus pool": (lambda m, a: _layer(m).update(pool="avg9"), r"'pool' must be one of"),
    "wrong in": (lambda m, a: _layer(m).update(**{"in": _layer(m)["in"] + 1}), r"'in' = .* previous layer gives"),
    "wrong k": (lambda m, a: _layer(m).update(k=1), r"shape .* does not match the layer table"),
    "wrong out": (lambda m, a: _layer(m).update(out=_layer(m)["out"] * 2), r"does not match the layer table"),
    "lying input_max": (lambda m, a: _layer(m).update(input_max=10**6), r"'input_max'"),
    "missing array": (lambda m, a: a.pop(f"{_layer(m)['name']}.dir"), r"array missing"),
    "head outputs": (lambda m, a: m["model_config"].update(anchors=[[1.0, 2.0]]), r"anchors need 5 outputs"),
    "zero anchor": (lambda m, a: m["model_config"].update(anchors=[[0.0, 1.0]] * 5), r"positive finite"),
    "no layers": (lambda m, a: m.update(layers=[]), r"layer table of 2\.\."),
    "stride lies": (lambda m, a: m.update(stride=64), r"pools down by"),
}


@pytest.mark.parametrize("case", sorted(CASES), ids=str)
def test_crafted_manifest_is_refused_before_allocating(tmp_path: Path, case: str) -> None:
    change, message = CASES[case]
    path = _rewrite(tmp_path, change)
    with pytest.raises(ModelFileError, match=r"crafted\.fdet: .*" + message):
        IntEngine.load(path)


def test_manifest_that_lies_about_sizes_is_called_inconsistent_not_truncated(tmp_path: Path) -> None:
    good = write_random_model(tmp_path / "ok.fdet").read_bytes()
    (length,) = struct.unpack_from("<I", good, 8)
    manifest = json.loads(good[12 : 12 + length])
    manifest["arrays"][0][2] = [n * 1000 for n in manifest["arrays"][0][2]]  # claims far more bytes
    text = json.dumps(manifest, separators=(",", ":")).encode()
    body = good[:4] + struct.pack("<II", 1, len(text)) + text + good[12 + length : -32]
    path = tmp_path / "crafted.fdet"
    path.write_bytes(body + hashlib.sha256(body).digest())
    with pytest.raises(ModelFileError, match="inconsistent model file: its array table describes") as info:
        IntEngine.load(path)
    assert "truncated" not in str(info.value)


@pytest.mark.parametrize("shape", [[-1, -8], ["a"], [1] * 9])
def test_bad_array_table_shapes_are_corrupt_not_tracebacks(tmp_path: Path, shape: list[Any]) -> None:
    good = write_random_model(tmp_path / "ok.fdet").read_bytes()
    (length,) = struct.unpack_from("<I", good, 8)
    manifest = json.loads(good[12 : 12 + length])
    manifest["arrays"][0][2] = shape
    text = json.dumps(manifest, separators=(",", ":")).encode()
    body = good[:4] + struct.pack("<II", 1, len(text)) + text + good[12 + length : -32]
    path = tmp_path / "crafted.fdet"
    path.write_bytes(body + hashlib.sha256(body).digest())
    with pytest.raises(ModelFileError, match="unreadable manifest"):
        IntEngine.load(path)


def test_bad_img_size_override_is_the_callers_error(tmp_path: Path) -> None:
    path = write_random_model(tmp_path / "ok.fdet")
    with pytest.raises(ValueError, match="img_size 100 must be a multiple") as info:
        IntEngine.load(path, img_size=100)
    assert not isinstance(info.value, ModelFileError)


@pytest.mark.parametrize("shipped", sorted((Path(__file__).parents[1] / "weights").glob("*.fdet")), ids=str)
def test_shipped_models_pass_validation(shipped: Path) -> None:
    assert IntEngine.load(shipped).config.img_size == 416
