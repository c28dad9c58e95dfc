"""The native (C) engine against the numpy engine, bit for bit, on every instruction set the CPU runs.

Random layers cover every layer kind (binary / int8 threshold blocks, duplicated weight channels on
either axis, duplicated input maps, 8-bit requantization, both heads), odd map sizes, every pool,
negative BN scales (``down`` channels) and thresholds at the accumulator extremes; then the shipped
models. The numpy engine is the reference (``tests/test_engine.py`` ties it to torch).
"""

from __future__ import annotations

import platform
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from facedet.engine import IntEngine, native
from facedet.engine.core import _CompiledHead, _CompiledRequant, _CompiledThreshold
from facedet.engine.schema import Head, Layer, RequantConv, ThresholdConv

WEIGHTS = Path(__file__).resolve().parent.parent / "weights"
SHIPPED = ["dupnet-tinier-yolo", "ifq-tinier-yolo", "tiny-yolo-int8"]
ISAS = native.available_isas()
needs_native = pytest.mark.skipif(not ISAS, reason="native extension not built")


def _image(height: int, width: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (5, 4, 3)).astype(np.uint8)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)


def _threshold(rng: np.random.Generator, cin: int, cout: int, k: int, pool: str, top: int, **dup: object) -> Layer:
    """A random threshold block; thresholds near the accumulator's spread plus the extremes."""
    kind = str(dup.get("kind", "binary"))
    d, axis, d_in = int(dup.get("d", 1)), str(dup.get("axis", "in")), int(dup.get("d_in", 1))
    stored_in, stored_out = cin * d_in // (d if axis == "in" else 1), cout // (d if axis == "out" else 1)
    shape = (stored_out, stored_in, k, k)
    weight = rng.choice([-1, 1], shape) if kind == "binary" else rng.integers(-127, 128, shape)
    layer = ThresholdConv("c", cin, cout, k, pool, kind, d, axis, d_in, top, 0, weight, np.zeros((cout, 3)), None)
    effective = layer.effective_weight().reshape(cout, -1)
    layer.bound = int(np.abs(effective).sum(1).max()) * top
    centre = effective.sum(1) * top / 2.0
    spread = np.sqrt(np.square(effective).sum(1)) * top / 3.0 + 1
    thresholds = np.sort(np.rint(centre[:, None] + spread[:, None] * rng.normal(size=(cout, 3))), axis=1)
    extremes = np.array([-layer.bound - 1, -layer.bound, layer.bound, layer.bound + 1])
    pick = rng.random((cout, 3)) < 0.15
    thresholds[pick] = rng.choice(extremes, pick.sum())
    layer.thresholds = thresholds.astype(np.int64)
    layer.down = rng.random(cout) < 0.3
    return layer


def _requant(rng: np.random.Generator, cin: int, cout: int, k: int, pool: str, input_max: int) -> RequantConv:
    weight = rng.integers(-127, 128, (cout, cin, k, k))
    acc_std = np.sqrt(cin * k * k) * 73.0 * input_max / 2.0
    multiplier = rng.integers(2**29, 2**31, (2, cout))
    multiplier[1] //= 10  # the leaky slope
    shift = np.full(cout, int(np.log2(acc_std * 2**30 / 60.0)))
    bias = rng.integers(-int(acc_std), int(acc_std) + 1, cout)
    return RequantConv("r", cin, cout, k, pool, input_max, weight, bias, multiplier, shift)


def _head(rng: np.random.Generator, cin: int, kind: str, dup: int, input_max: int) -> Head:
    shape = (10, cin * dup, 1, 1)
    weight = rng.choice([-1, 1], shape) if kind == "binary" else rng.integers(-127, 128, shape)
    scale = rng.normal(size=10).astype(np.float32) / 7
    return Head(cin, 10, kind, dup, input_max, weight, scale, rng.normal(size=10).astype(np.float32))


def numpy_outputs(layers: list[Layer], head: Head, image: np.ndarray) -> list[np.ndarray]:
    """``IntEngine.layer_outputs`` of the numpy engine on hand-made layers."""
    x, outputs = image.astype(np.float32), []
    int8 = any(isinstance(layer, RequantConv) for layer in layers)
    for layer in layers:
        x = _CompiledThreshold(layer)(x) if isinstance(layer, ThresholdConv) else _CompiledRequant(layer)(x)
        outputs.append(x.transpose(2, 0, 1).astype(np.int8 if int8 else np.uint8))
    return outputs + [_CompiledHead(head)(x)]


def threshold_net(seed: int, kind: str) -> tuple[list[Layer], Head]:
    rng = np.random.default_rng(seed)
    layers = [
        _threshold(rng, 3, 24, 3, "max2", 255, kind=kind, d_in=2),  # duplicated input maps, Cout not /16
        _threshold(rng, 24, 20, 3, "max2", 3, d=4, axis="out"),  # duplicated output channels
        _threshold(rng, 20, 40, 1, "none", 3, kind=kind),
        _threshold(rng, 40, 48, 3, "max2s1", 3, d=8),  # reads the sums of 8 code groups
        _threshold(rng, 48, 32, 3, "max2", 3, d=2, kind=kind),  # odd map: floor pool
    ]
    return layers, _head(rng, 32, "binary" if kind == "binary" else "int8", 2, 3)


def int8_net(seed: int) -> tuple[list[Layer], Head]:
    rng = np.random.default_rng(seed)
    layers = [
        _requant(rng, 3, 16, 3, "max2", 255),
        _requant(rng, 16, 24, 3, "max2s1", 128),
        _requant(rng, 24, 40, 1, "none", 128),
        _requant(rng, 40, 33, 3, "max2", 128),
    ]
    return layers, _head(rng, 33, "int8", 1, 128)


@needs_native
@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("case", ["binary", "int8", "requant"])
def test_random_layers_match_numpy(isa: str, case: str) -> None:
    for seed, (height, width) in enumerate([(46, 38), (23, 31), (20, 20)]):
        layers, head = int8_net(seed) if case == "requant" else threshold_net(seed, case)
        image = _image(height, width, seed)
        expected = numpy_outputs(layers, head, image)
        net = native.NativeNet(layers, head, isa)
        got = net.layer_outputs(image)
        assert len(got) == len(expected)
        for index, (a, b) in enumerate(zip(got, expected, strict=True)):
            assert a.dtype == b.dtype and a.shape == b.shape, index
            assert np.array_equal(a, b), f"{case} seed {seed}: layer {index} differs on {isa}"
        assert all(len(np.unique(codes)) > 1 for codes in expected[:-1])  # codes really vary
        assert np.array_equal(net.raw(image), expected[-1])


@needs_native
@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_models_match_numpy(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    reference = IntEngine.load(WEIGHTS / f"{name}.fdet", img_size=128, engine="numpy")
    image = _image(128, 128, 3)
    expected_layers, expected = reference.layer_outputs(image), reference.raw(image)
    for isa in ISAS:
        monkeypatch.setenv("FACEDET_ISA", isa)
        engine = IntEngine.load(WEIGHTS / f"{name}.fdet", img_size=128)
        assert (engine.engine, engine.isa, engine.info["isa"]) == ("native", isa, isa)
        assert np.array_equal(engine.raw(image), expected), isa
        for a, b in zip(engine.layer_outputs(image), expected_layers, strict=True):
            assert a.dtype == b.dtype and np.array_equal(a, b), isa


@needs_native
def test_shipped_default_size_detections_match() -> None:
    name = "dupnet-tinier-yolo"
    image = _image(480, 640, 9)
    native_engine = IntEngine.load(WEIGHTS / f"{name}.fdet", engine="native")
    numpy_engine = IntEngine.load(WEIGHTS / f"{name}.fdet", engine="numpy")
    a, b = native_engine.detect(image), numpy_engine.detect(image)
    assert np.array_equal(a.boxes, b.boxes) and np.array_equal(a.scores, b.scores)


def test_numpy_fallback_when_not_built(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(native, "_native", None)
    monkeypatch.setattr(native, "_warned", set())
    monkeypatch.delenv("FACEDET_ENGINE", raising=False)
    engine = IntEngine.load(WEIGHTS / "dupnet-tinier-yolo.fdet", img_size=64)
    assert engine.engine == "numpy" and engine.isa is None
    IntEngine.load(WEIGHTS / "dupnet-tinier-yolo.fdet", img_size=64, engine="native")
    warnings = capsys.readouterr().err.strip().splitlines()
    assert len(warnings) == 1 and "numpy engine" in warnings[0]  # one line, once
    assert engine.raw(_image(64, 64, 1)).shape == (25, 2, 2)
    assert native.available_isas() == []


def test_engine_and_isa_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FACEDET_ENGINE", "numpy")
    assert native.resolve_engine() == "numpy"
    assert IntEngine.load(WEIGHTS / "dupnet-tinier-yolo.fdet", img_size=64).engine == "numpy"
    assert native.resolve_engine("native") == ("native" if ISAS else "numpy")
    monkeypatch.setenv("FACEDET_ENGINE", "fast")
    with pytest.raises(ValueError, match="unknown engine 'fast'"):
        native.resolve_engine()
    with pytest.raises(ValueError, match="unknown instruction set"):
        native.resolve_isa("sse9")
    if ISAS:
        assert native.resolve_isa() == ISAS[0] and ISAS[-1] == "c"
        monkeypatch.setenv("FACEDET_ISA", "c")
        assert native.resolve_isa() == "c"


@pytest.mark.skipif(
    platform.machine() not in ("x86_64", "AMD64") or shutil.which("gcc") is None, reason="needs gcc on x86-64"
)
def test_extension_is_built_where_a_compiler_exists() -> None:
    # `pip install` builds it (setup.py); an optional build that silently failed would land here
    assert "c" in ISAS and "avx2" in ISAS or "avx2" not in open("/proc/cpuinfo").read()


@needs_native
def test_native_rejects_bad_buffers() -> None:
    layers, head = threshold_net(0, "binary")
    layer = native.NativeNet(layers, head, "c").layers[0]
    with pytest.raises(ValueError, match="input channels"):
        layer(np.zeros((8, 8, 4), np.uint8), "c")
    with pytest.raises(ValueError, match="not available|output"):
        native._native.conv("avx9", (8, 8, 3, 0, 3, 3, 24, 32, 1, 0, 3, 1, 1), *[np.zeros(4, np.uint8)] * 6)


def test_detect_cli_engines_agree(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from facedet.cli import main

    image = tmp_path / "frame.png"
    cv2.imwrite(str(image), _image(240, 320, 4))
    outputs = []
    for engine in ("native", "numpy"):
        model = str(WEIGHTS / "ifq-tinier-yolo.fdet")
        assert main(["detect", str(image), "--model", model, "--json", "--min-score", "0.05", "--engine", engine]) == 0
        outputs.append(capsys.readouterr().out)
    assert outputs[0] == outputs[1] and outputs[0].strip()
    assert main(["detect", str(image), "--threads", "0"]) == 2


def test_engine_falls_back_where_native_is_not_exact(monkeypatch: pytest.MonkeyPatch) -> None:
    from facedet.engine.schema import to_manifest
    from facedet.model_file import decode_model_file, encode_model_file
    from facedet.testing import random_layers, tiny_config

    config = tiny_config()
    layers, head = random_layers(config)
    layer = layers[1]
    assert isinstance(layer, ThresholdConv)
    layer.weight_kind, layer.weight = "int8", layer.weight * 100
    layer.weight[0, 0, 0, 0] = -128  # int8, but beyond the kernels' symmetric [-127, 127]
    manifest, arrays = decode_model_file(encode_model_file(*to_manifest(config, layers, head)))
    monkeypatch.setattr(native, "_warned", set())
    engine = IntEngine(manifest, arrays, engine="native")
    assert engine.engine == "numpy" and engine.raw(_image(64, 64, 2)).shape == (15, 8, 8)
    if ISAS:
        assert native._warned and "cannot run this model" in next(iter(native._warned))
        with pytest.raises(native.NativeUnsupported, match="beyond int8"):
            native.NativeNet(layers, head)
