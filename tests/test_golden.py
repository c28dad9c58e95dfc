"""Golden outputs: every shipped model finds the committed boxes on a committed image.

Parity tests compare the torch model with the integer engine through the same decode and NMS, so
a change to those shared steps moves both sides and passes. These goldens pin the end result:
``tests/data/golden/<model>.json`` holds each ``weights/*.fdet``'s detections on
``tests/data/service/faces_640x480.jpg``, written by ``python scripts/make_golden.py``.
After shipping new weights, run that command and commit its JSON files.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from facedet.anchors import PostProcess
from facedet.engine import IntEngine, native

REPO = Path(__file__).resolve().parent.parent
GOLDEN = REPO / "tests" / "data" / "golden"
MODELS = sorted((REPO / "weights").glob("*.fdet"))
REGENERATE = "run `python scripts/make_golden.py` and commit tests/data/golden/"
# The two faces of the image, as an independent detector (OpenCV's Haar cascade) finds them
# (tests/data/service/README.md): x1, y1, x2, y2 pixels.
FACES = ((101, 124, 234, 257), (458, 159, 550, 251))
ENGINES = ["numpy"] + (["native"] if native.available_isas() else [])


def _golden(model: Path) -> dict[str, Any]:
    path = GOLDEN / f"{model.stem}.json"
    assert path.is_file(), f"no golden detections for {model.name}: {REGENERATE}"
    golden: dict[str, Any] = json.loads(path.read_text())
    digest = hashlib.sha256(model.read_bytes()).hexdigest()
    assert golden["sha256"] == digest, f"{model.name} is not the file the goldens were made from: {REGENERATE}"
    return golden


def test_every_golden_belongs_to_a_shipped_model() -> None:
    assert MODELS, "no weights/*.fdet shipped"
    assert sorted(p.stem for p in GOLDEN.glob("*.json")) == [m.stem for m in MODELS], REGENERATE


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("model", MODELS, ids=lambda p: p.stem)
def test_shipped_model_finds_the_golden_boxes(model: Path, engine: str) -> None:
    golden = _golden(model)
    detector = IntEngine.load(model, img_size=golden["img_size"], engine=engine)
    image = cv2.imread(str(REPO / golden["image"]), cv2.IMREAD_COLOR)
    found = detector.detect(image, PostProcess(**golden["post"]))
    boxes, scores = np.asarray(golden["boxes"], np.float32).reshape(-1, 4), np.asarray(golden["scores"])
    assert len(found) == len(scores), f"{len(found)} detections, golden {len(scores)}"
    # The goldens are rounded to 0.001 px and 1e-6; anything beyond is a changed result.
    np.testing.assert_allclose(found.boxes, boxes, rtol=0, atol=2e-3)
    np.testing.assert_allclose(found.scores, scores, rtol=0, atol=2e-6)


@pytest.mark.parametrize("model", MODELS, ids=lambda p: p.stem)
def test_golden_boxes_lie_on_the_faces(model: Path) -> None:
    """The goldens are right, not only stable: the two best boxes are centred on the two faces."""
    golden = _golden(model)
    centres = [((x1 + x2) / 2, (y1 + y2) / 2) for x1, y1, x2, y2 in golden["boxes"][:2]]
    for x1, y1, x2, y2 in FACES:
        assert any(x1 <= cx <= x2 and y1 <= cy <= y2 for cx, cy in centres), (model.name, golden["boxes"][:2])
