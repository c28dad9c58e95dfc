"""ONNX export parity: the exported graph, run by onnxruntime, against the numpy integer engine.

Tolerance: none. The raw head map must be bit for bit the engine's: threshold and 8-bit layers are
integer (or exactly folded) arithmetic, and the float head is ``float32(acc) * scale`` then
``+ bias`` on an exact integer accumulator, the same two float32 roundings the engine performs.
Skipped only where onnx/onnxruntime are not installed (the [onnx] extra; [dev] includes it).
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from facedet.boxes import letterbox  # noqa: E402
from facedet.cli import main  # noqa: E402
from facedet.config import ConvSpec  # noqa: E402
from facedet.engine import IntEngine  # noqa: E402
from facedet.engine.schema import to_manifest  # noqa: E402
from facedet.export_onnx import check_images, export_onnx  # noqa: E402
from facedet.model_file import write_model_file  # noqa: E402
from facedet.onnx_detector import OnnxDetector  # noqa: E402
from facedet.onnx_fold import accumulator_range  # noqa: E402
from facedet.testing import random_layers, tiny_config, write_random_model  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
PHOTO = REPO / "tests" / "data" / "service" / "faces_640x480.jpg"


def _inputs(size: int, value: int) -> list[np.ndarray]:
    photo, _ = letterbox(cv2.imread(str(PHOTO), cv2.IMREAD_COLOR), size, value)
    return check_images(size, value, seed=7) + [photo]


def _assert_same_raw(fdet: Path, onnx_file: Path, img_size: int | None = None) -> None:
    engine = IntEngine.load(fdet, img_size=img_size, engine="numpy")
    detector = OnnxDetector(onnx_file, img_size=img_size)
    for image in _inputs(engine.config.img_size, engine.config.letterbox_value):
        got, want = detector.raw(image), engine.raw(image)
        assert got.dtype == np.float32 and got.shape == want.shape
        np.testing.assert_array_equal(got, want)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["dupnet-tinier-yolo", "ifq-tinier-yolo", "tiny-yolo-int8"])
def test_shipped_models_export_bit_exact(tmp_path: Path, name: str) -> None:
    result = export_onnx(name, tmp_path / f"{name}.onnx")
    assert result.checked_images == 3  # the exporter's own check ran (onnxruntime is installed)
    if name != "tiny-yolo-int8":  # threshold models: every channel folds into QLinearConv
        assert all("QLinearConv, all" in note for note in result.notes)
    _assert_same_raw(REPO / "weights" / f"{name}.fdet", result.path)


def _random_variant(tmp_path: Path, kind: str) -> Path:
    config = tiny_config()
    if kind == "dup-out":
        config = config.with_(dup_axis="out")
    elif kind == "int8-first":
        config = config.with_(layers=(ConvSpec(8, pool="max2", weight="int8"),) + config.layers[1:])
    return write_random_model(tmp_path / f"{kind}.fdet", config, seed=3)


@pytest.mark.parametrize("kind", ["tiny", "dup-out", "int8-first"])
def test_random_models_export_bit_exact(tmp_path: Path, kind: str) -> None:
    fdet = _random_variant(tmp_path, kind)
    onnx_file = export_onnx(fdet, tmp_path / "m.onnx", check=False).path
    _assert_same_raw(fdet, onnx_file)
    _assert_same_raw(fdet, onnx_file, img_size=96)  # the graph takes any multiple of the stride


def test_inexpressible_channels_use_exact_comparisons(tmp_path: Path) -> None:
    # Layer 2: a few channels no QLinearConv rounding can express (two thresholds on one value,
    # drifting spacings) beside channels at the accumulator extremes; layer 3: all inexpressible.
    config = tiny_config()
    layers, head = random_layers(config, seed=5)
    for layer, channels in ((layers[1], range(4)), (layers[2], range(layers[2].out_channels))):
        lo, hi = accumulator_range(layer.effective_weight(), layer.input_max)
        for c in channels:
            mid = int((lo[c] + hi[c]) // 2)
            layer.thresholds[c] = [mid - 1, mid, mid] if c % 2 else [mid - 9, mid, mid + 1]
            layer.down[c] = False
    layers[1].thresholds[4] = [-layers[1].bound] * 3  # code 3 everywhere
    layers[1].thresholds[5] = [layers[1].bound + 1] * 3  # code 0 everywhere
    manifest, arrays = to_manifest(config, layers, head)
    fdet = write_model_file(tmp_path / "odd.fdet", manifest, arrays)
    result = export_onnx(fdet, tmp_path / "odd.onnx")
    assert result.notes[1].startswith("conv2: QLinearConv on 12 channels, ConvInteger + comparisons on [0, 1, 2, 3]")
    assert result.notes[2].startswith("conv3: ConvInteger + comparisons")
    _assert_same_raw(fdet, result.path)


def _detect_json(model: Path | str, capsys: pytest.CaptureFixture[str]) -> list[dict]:
    assert main(["detect", str(PHOTO), "--model", str(model), "--json", "--min-score", "0.05"]) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def test_cli_export_and_detect_give_the_same_detections(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "dupnet.onnx"
    assert main(["export", "dupnet-tinier-yolo", "--format", "onnx", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"wrote {out}" in printed and "bit for bit" in printed
    from_onnx, from_fdet = _detect_json(out, capsys), _detect_json("dupnet-tinier-yolo", capsys)
    assert from_onnx == from_fdet and from_onnx[0]["boxes"]  # same boxes and scores, and some faces
    random_fdet = write_random_model(tmp_path / "r.fdet")
    assert main(["export", str(random_fdet), "--format", "onnx", "--out", str(tmp_path / "r.onnx")]) == 0
    capsys.readouterr()
    assert _detect_json(tmp_path / "r.onnx", capsys) == _detect_json(random_fdet, capsys)


def test_onnx_detector_interface(tmp_path: Path) -> None:
    fdet = write_random_model(tmp_path / "r.fdet")
    detector = OnnxDetector(export_onnx(fdet, tmp_path / "r.onnx").path)
    engine = IntEngine.load(fdet, engine="numpy")
    assert (detector.name, detector.img_size, detector.stored_bytes) == (engine.name, 64, engine.stored_bytes)
    assert detector.macs >= engine.macs  # the graph also counts its 1x1 group-sum convs
    image = cv2.imread(str(PHOTO), cv2.IMREAD_COLOR)
    got, want = detector.detect(image), engine.detect(image)
    np.testing.assert_array_equal(got.boxes, want.boxes)
    np.testing.assert_array_equal(got.scores, want.scores)


def _err(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    return err


def test_clear_one_line_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import onnx

    photo = str(PHOTO)
    assert "gone.onnx" in _err(["detect", photo, "--model", str(tmp_path / "gone.onnx")], capsys)
    junk = tmp_path / "junk.onnx"
    junk.write_text("not a model")
    assert "junk.onnx: onnxruntime cannot load this file" in _err(["detect", photo, "--model", str(junk)], capsys)
    foreign = tmp_path / "foreign.onnx"  # a valid ONNX file that facedet did not write
    graph = onnx.helper.make_graph(
        [onnx.helper.make_node("Identity", ["image"], ["raw"])],
        "g",
        [onnx.helper.make_tensor_value_info("image", onnx.TensorProto.FLOAT, [1])],
        [onnx.helper.make_tensor_value_info("raw", onnx.TensorProto.FLOAT, [1])],
    )
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)])
    model.ir_version = 8
    foreign.write_bytes(model.SerializeToString())
    assert "without facedet metadata" in _err(["detect", photo, "--model", str(foreign)], capsys)
    out = str(tmp_path / "x.onnx")
    assert "no such model" in _err(["export", "no-such-model", "--format", "onnx", "--out", out], capsys)
    assert "--format onnx" in _err(["export", "dupnet-tinier-yolo", "--out", out], capsys)
    assert "FILE.onnx" in _err(["export", "dupnet-tinier-yolo", "--format", "onnx", "--out", "x.fdet"], capsys)
    assert "not an integer model" in _err(["export", str(junk), "--format", "onnx", "--out", out], capsys)


def test_unsupported_model_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # An int8 head on duplicated input maps whose summed kernel leaves int8: no ConvInteger kernel for it.
    config = tiny_config().with_(head_weight="int8")
    layers, head = random_layers(config, seed=1)
    head.weight[:] = 127
    manifest, arrays = to_manifest(config, layers, head)
    fdet = write_model_file(tmp_path / "wide.fdet", manifest, arrays)
    err = _err(["export", str(fdet), "--format", "onnx", "--out", str(tmp_path / "w.onnx")], capsys)
    assert "wide.fdet" in err and "head" in err and "int8" in err
