"""The Python API, model names, the one model variable, packaged models and the deployment size."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import pytest

import facedet
from facedet.paths import MODEL_ENV, resolve_model
from facedet.testing import write_random_model

REPO = Path(__file__).resolve().parent.parent
FACES = REPO / "tests" / "data" / "service" / "faces_640x480.jpg"
FACE_BOXES = [(101, 124, 234, 257), (458, 159, 550, 251)]  # x1, y1, x2, y2 (tests/data/service/README.md)


def inside(box: tuple[float, float, float, float], face: tuple[int, int, int, int]) -> bool:
    """The box (x, y, width, height) has its centre inside the face (x1, y1, x2, y2)."""
    cx, cy = box[0] + box[2] / 2, box[1] + box[3] / 2
    return face[0] <= cx <= face[2] and face[1] <= cy <= face[3]


@pytest.mark.parametrize("name", ["dupnet-tinier-yolo", "ifq-tinier-yolo"])
def test_detector_by_name_finds_both_faces(name: str) -> None:
    detector = facedet.Detector(name)
    faces = detector.detect(FACES)
    # The file shipped under a family's name may hold a registered variant (the c5x4 DupNet).
    assert detector.name in (name, f"{name}-c5x4") and detector.img_size == 416
    assert len(faces) >= 2 and all(0.5 <= f.score <= 1 for f in faces)
    assert all(any(inside(f.box, face) for f in faces) for face in FACE_BOXES)  # a box on each face
    # A BGR array gives the same faces as the path.
    assert detector.detect(cv2.imread(str(FACES))) == faces


def test_detector_rejects_bad_input(tmp_path: Path) -> None:
    detector = facedet.Detector(write_random_model(tmp_path / "m.fdet"), min_score=0.0, max_faces=3)
    assert len(detector.detect(FACES)) <= 3
    with pytest.raises(ValueError, match="BGR uint8"):
        detector.detect(cv2.imread(str(FACES), cv2.IMREAD_GRAYSCALE))
    (tmp_path / "x.jpg").write_text("no image")
    with pytest.raises(ValueError, match="x.jpg"):
        detector.detect(tmp_path / "x.jpg")
    with pytest.raises(ValueError, match="min_score"):
        facedet.Detector(write_random_model(tmp_path / "m.fdet"), min_score=2)
    with pytest.raises(FileNotFoundError, match="no-such"):
        facedet.Detector("no-such")


def test_one_model_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = write_random_model(tmp_path / "m.fdet")
    monkeypatch.setenv(MODEL_ENV, str(model))
    assert resolve_model(None) == model
    monkeypatch.setenv(MODEL_ENV, "dupnet-tinier-yolo")
    assert resolve_model(None).name == "dupnet-tinier-yolo.fdet"
    monkeypatch.setenv(MODEL_ENV, str(tmp_path / "gone.fdet"))
    with pytest.raises(FileNotFoundError, match=f"{MODEL_ENV}="):
        resolve_model(None)
    monkeypatch.delenv(MODEL_ENV)
    assert resolve_model(None).read_bytes() == (REPO / "weights" / "default.fdet").read_bytes()
    # The service's settings no longer read a second variable for the model.
    pytest.importorskip("pydantic_settings")
    from service.settings import Settings

    monkeypatch.setenv("FACEDET_MODEL_PATH", str(model))
    assert Settings().model_path is None
    sources = [p for p in (REPO / "service").rglob("*.py")] + [REPO / "Dockerfile", REPO / "README.md"]
    assert not [p for p in sources if "FACEDET_MODEL_PATH" in p.read_text()]


def test_packaged_models_are_the_shipped_files() -> None:
    for name in ("dupnet-tinier-yolo", "ifq-tinier-yolo", "default"):
        packaged = REPO / "facedet" / "weights" / f"{name}.fdet"
        assert packaged.read_bytes() == (REPO / "weights" / f"{name}.fdet").read_bytes()


@pytest.mark.slow
def test_wheel_carries_the_models_and_detects_outside_the_repo(tmp_path: Path) -> None:
    """Build the wheel, install it into a folder, and detect by model name from elsewhere."""
    pytest.importorskip("setuptools")
    src = tmp_path / "src"  # a copy, so the build writes nothing into the checkout
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build")
    for name in ("facedet", "service"):
        shutil.copytree(REPO / name, src / name, ignore=ignore)  # links followed: the files themselves
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        (src / name).write_bytes((REPO / name).read_bytes())
    wheels = tmp_path / "wheels"
    build = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(wheels)]
    subprocess.run([*build, str(src)], check=True, capture_output=True, timeout=300)
    (wheel,) = wheels.glob("facedet_tiny-*.whl")
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    assert (target / "facedet" / "weights" / "dupnet-tinier-yolo.fdet").is_file()
    assert not (target / "facedet" / "weights" / "tiny-yolo-int8.fdet").exists()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k != MODEL_ENV} | {"PYTHONPATH": str(target)}
    code = "import facedet, sys; print(facedet.__file__); print(len(facedet.Detector(sys.argv[1]).detect(sys.argv[2])))"
    for name in ("dupnet-tinier-yolo", "default"):
        done = subprocess.run(
            [sys.executable, "-c", code, name, str(FACES)], cwd=elsewhere, env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        where, count = done.stdout.split()
        assert where.startswith(str(target)) and int(count) >= 2


def test_deployment_size_travels_in_the_checkpoint(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from facedet.engine import IntEngine
    from facedet.export import export_checkpoint
    from facedet.models import build_model, model_config
    from facedet.models.checkpoint import save_checkpoint, slim_checkpoint
    from facedet.models.predict import TorchDetector

    config = model_config("dupnet-tinier-yolo", img_size=64)  # trained at 64 px
    ckpt = save_checkpoint(
        tmp_path / "d.pt", {"model_config": config.to_dict(), "model": build_model(config).state_dict()}
    )
    assert TorchDetector.from_checkpoint(ckpt).img_size == 64  # no deployment size stored: the training size
    slim = slim_checkpoint(ckpt, tmp_path / "slim.pt", deploy_img_size=96)
    assert TorchDetector.from_checkpoint(slim).img_size == 96
    assert IntEngine.load(export_checkpoint(slim, tmp_path / "d.fdet")).config.img_size == 96
    assert TorchDetector.from_checkpoint(slim, img_size=128).img_size == 128
