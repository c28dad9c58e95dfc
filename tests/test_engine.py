"""The integer engine against the fake-quantized torch model: every layer, bit for bit."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from facedet.anchors import PostProcess
from facedet.config import ConvSpec, ModelConfig
from facedet.engine import IntEngine
from facedet.export import export_model
from facedet.models import build_model, model_config
from facedet.models.predict import TorchDetector
from facedet.testing import randomize_bn


def _config(
    layers: tuple[ConvSpec, ...], head_weight: str = "binary", head_dup: int = 1, axis: str = "in", size: int = 32
) -> ModelConfig:
    return ModelConfig(
        name="case",
        img_size=size,
        anchors=((6.0, 8.0), (16.0, 20.0)),
        layers=layers,
        activation="hwgq",
        head_weight=head_weight,
        head_dup_input=head_dup,
        dup_axis=axis,
    )


DATA = Path(__file__).resolve().parent / "data"


def real_images() -> list[np.ndarray]:
    """The repository's small fixture photos (faces), when present."""
    paths = sorted(DATA.glob("service/*.jpg")) + sorted(DATA.glob("fddb/originalPics/**/*.jpg"))[:2]
    return [image for image in (cv2.imread(str(p)) for p in paths) if image is not None]


def _images(size: int, count: int = 3, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = real_images()[:2]
    for _ in range(count):
        small = rng.integers(0, 256, (5, 7, 3)).astype(np.uint8)
        out.append(cv2.resize(small, (size + 13, size - 5), interpolation=cv2.INTER_CUBIC))
    return out


def _check_parity(config: ModelConfig, tmp_path: Path, seed: int = 0) -> IntEngine:
    torch.manual_seed(seed)
    model = build_model(config)
    randomize_bn(model, seed)
    model.eval()
    engine = IntEngine.load(export_model(model, config, tmp_path / "m.fdet"))
    torch_detector = TorchDetector(model, config, post=PostProcess(score_threshold=0.0))
    varied = 0
    for image in _images(config.img_size, seed=seed):
        from facedet.boxes import letterbox

        boxed, _ = letterbox(image, config.img_size, config.letterbox_value)
        with torch.no_grad():
            expected = [
                t[0].numpy()
                for t in model.forward_layers(torch.from_numpy(boxed.transpose(2, 0, 1).copy()).float()[None])
            ]
        got = engine.layer_outputs(boxed)
        assert len(got) == len(expected)
        for index, (want, have) in enumerate(zip(expected, got, strict=True)):
            assert want.shape == have.shape, index
            assert np.array_equal(want, have.astype(want.dtype)), f"layer {index} differs"
            if index < len(expected) - 1:
                varied += len(np.unique(have)) > 1
        assert got[-1].dtype == np.float32
        # final detections to the last digit, through the shared decode + NMS
        a = engine.detect(image, PostProcess(score_threshold=0.0))
        b = torch_detector.detect(image)
        assert len(a) > 0
        assert np.array_equal(a.boxes, b.boxes) and np.array_equal(a.scores, b.scores)
    assert varied > 0  # codes are not constant
    return engine


CASES = {
    "int8-first-int8-head": (_config((ConvSpec(8, pool="max2", weight="int8"), ConvSpec(8, weight="binary")), "int8"),),
    "binary": (_config((ConvSpec(8, pool="max2", weight="binary"), ConvSpec(16, pool="max2", weight="binary"))),),
    "dup-weight-in": (
        _config((ConvSpec(8, pool="max2", weight="binary"), ConvSpec(16, weight="binary", dup_weight=4))),
    ),
    "dup-weight-out": (
        _config((ConvSpec(8, pool="max2", weight="binary"), ConvSpec(16, weight="binary", dup_weight=4)), axis="out"),
    ),
    "dup-input": (
        _config((ConvSpec(8, pool="max2", weight="binary", dup_input=4), ConvSpec(8, weight="binary")), head_dup=4),
    ),
    "max2s1-1x1": (
        _config((ConvSpec(8, pool="max2", weight="binary"), ConvSpec(8, kernel=1, pool="max2s1", weight="binary"))),
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_layer_type_parity(case: str, tmp_path: Path) -> None:
    (config,) = CASES[case]
    _check_parity(config, tmp_path)


@pytest.mark.parametrize("name", ["ifq-tinier-yolo", "dupnet-tinier-yolo"])
def test_whole_preset_parity(name: str, tmp_path: Path) -> None:
    engine = _check_parity(model_config(name, img_size=64), tmp_path, seed=1)
    assert engine.config.stride == 32


def test_img_size_override(tmp_path: Path) -> None:
    config = CASES["dup-input"][0]
    model = build_model(config)
    randomize_bn(model)
    path = export_model(model, config, tmp_path / "m.fdet")
    engine = IntEngine.load(path, img_size=48)
    torch_detector = TorchDetector(model, config, img_size=48, post=PostProcess(score_threshold=0.0))
    image = _images(48)[0]
    assert np.array_equal(engine.detect(image, PostProcess(0.0)).boxes, torch_detector.detect(image).boxes)
    assert engine.raw(np.zeros((48, 48, 3), np.uint8)).shape == (10, 24, 24)
    with pytest.raises(ValueError, match="multiple of the stride"):
        IntEngine.load(path, img_size=47)


def test_engine_imports_and_runs_without_torch(tmp_path: Path) -> None:
    code = (
        "import sys; sys.modules['torch'] = None; sys.modules['albumentations'] = None\n"
        "import numpy as np\n"
        "from facedet.engine import IntEngine\n"
        "from facedet.testing import write_random_model\n"
        "from facedet.anchors import PostProcess\n"
        "import facedet.runtime, facedet.model_file, facedet.export_c\n"
        f"p = write_random_model({str(tmp_path / 'r.fdet')!r})\n"
        "e = facedet.runtime.load_detector(p)\n"
        "d = e.detect(np.full((50, 70, 3), 90, np.uint8), PostProcess(score_threshold=0.0))\n"
        "assert len(d) > 0 and 'torch' not in [m for m in sys.modules if sys.modules[m] is not None]\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=Path(__file__).parent.parent
    )
    assert result.returncode == 0, result.stderr
