"""The C99 reference (csrc/) against the Python engine: raw head bit for bit, same detections."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest

from facedet.anchors import PostProcess, decode
from facedet.boxes import Letterbox
from facedet.engine import IntEngine
from facedet.export_c import write_c_header
from facedet.testing import write_random_model

CSRC = Path(__file__).resolve().parent.parent / "csrc"
GCC = shutil.which("gcc")
pytestmark = pytest.mark.skipif(GCC is None, reason="gcc not installed")


def build(model: Path, workdir: Path) -> Path:
    """Compile csrc/ with the model's header; return the executable."""
    header = write_c_header(model, workdir / "model.h")
    exe = workdir / "facedet_ref"
    command = [
        str(GCC), "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-pedantic", "-ffp-contract=off",
        '-DFD_MODEL_HEADER="model.h"', f"-I{CSRC}", f"-I{header.parent}",
        str(CSRC / "main.c"), str(CSRC / "facedet_ref.c"), "-lm", "-o", str(exe),
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return exe


def images(size: int, count: int = 3) -> list[np.ndarray]:
    rng = np.random.default_rng(5)
    return [
        cv2.resize(rng.integers(0, 256, (4 + i, 5, 3)).astype(np.uint8), (size, size), interpolation=cv2.INTER_CUBIC)
        for i in range(count)
    ]


def check(engine: IntEngine, exe: Path, workdir: Path, use_ppm: bool = False) -> None:
    size = engine.config.img_size
    for index, image in enumerate(images(size)):
        if use_ppm:
            source = workdir / f"in{index}.ppm"
            assert cv2.imwrite(str(source), image)  # OpenCV writes RGB PPM; the C side swaps back
        else:
            source = workdir / f"in{index}.bin"
            source.write_bytes(image.tobytes())
        raw_file = workdir / f"raw{index}.bin"
        result = subprocess.run([str(exe), str(source), str(raw_file), "0.05"], capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        expected = engine.raw(image)
        got = np.fromfile(raw_file, np.float32).reshape(expected.shape)
        assert np.array_equal(got, expected)
        # detections: the shared Python decode of the C raw output equals the engine's ...
        box = Letterbox(1.0, size, size)
        a, b = decode(got, engine.config.anchors, engine.config.stride, box), engine.detect(image)
        assert np.array_equal(a.boxes, b.boxes) and np.array_equal(a.scores, b.scores)
        # ... and the C decode + NMS agrees with it to float precision (in network pixels)
        c_boxes = np.array([[float(v) for v in line.split()] for line in result.stdout.splitlines()]).reshape(-1, 5)
        py = decode(got, engine.config.anchors, engine.config.stride, box, PostProcess(0.05, 0.4, 200))
        assert len(py) == len(c_boxes)
        assert np.allclose(c_boxes[:, 4], py.scores, atol=1e-5)
        assert np.allclose(c_boxes[:, :4], py.boxes, atol=2e-3)


def test_threshold_model(tmp_path: Path) -> None:
    model = write_random_model(tmp_path / "m.fdet")
    check(IntEngine.load(model), build(model, tmp_path), tmp_path, use_ppm=True)


def test_exported_presets(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    from facedet.export import export_model
    from facedet.models import build_model, model_config
    from facedet.testing import randomize_bn

    for name, kwargs in [("dupnet-tinier-yolo", {"dup_axis": "out"}), ("ifq-tinier-yolo", {})]:
        config = model_config(name, img_size=64, **kwargs)
        torch.manual_seed(0)
        model = build_model(config)
        randomize_bn(model, 3)
        path = export_model(model, config, tmp_path / f"{name}.fdet")
        check(IntEngine.load(path), build(path, tmp_path), tmp_path)


def test_int8_model(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from facedet.config import ConvSpec, ModelConfig
    from facedet.export import export_model
    from facedet.models import build_model

    config = ModelConfig(
        name="tiny-yolo",
        img_size=32,
        anchors=((6.0, 8.0), (16.0, 20.0)),
        layers=(ConvSpec(8, pool="max2"), ConvSpec(16, pool="max2"), ConvSpec(16, pool="max2s1")),
    )
    model = build_model(config)
    path = export_model(model, config, tmp_path / "t.fdet", calibration_images=images(48))
    check(IntEngine.load(path), build(path, tmp_path), tmp_path)


def test_export_command_writes_header(tmp_path: Path) -> None:
    from facedet.cli import main

    model = write_random_model(tmp_path / "m.fdet")
    assert main(["export", str(model), "--c-header", str(tmp_path / "h" / "model.h")]) == 0
    text = (tmp_path / "h" / "model.h").read_text()
    assert "static const fd_model fd_model_data" in text and "fd_conv1_w" in text
