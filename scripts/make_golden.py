"""Write the golden detections of every shipped model: ``tests/data/golden/<model>.json``.

Usage: python scripts/make_golden.py

Run it once after shipping new weights (``weights/*.fdet``), look at the boxes it prints, and
commit the JSON files with the weights. ``tests/test_golden.py`` then checks that each shipped
model still finds exactly these boxes on ``tests/data/service/faces_640x480.jpg``: a change to
the engine, the shared decode or NMS that moves a box fails the test, while parity tests (torch
against engine) cannot see it, as both sides would move together.
"""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import cv2  # noqa: E402

from facedet.anchors import PostProcess  # noqa: E402
from facedet.engine import IntEngine  # noqa: E402

IMAGE = REPO / "tests" / "data" / "service" / "faces_640x480.jpg"
GOLDEN = REPO / "tests" / "data" / "golden"
WEIGHTS = REPO / "weights"
# A low floor keeps some weak boxes too, so a change to decoding or NMS shows beyond the two faces.
POST = PostProcess(score_threshold=0.02, nms_iou=0.4, max_detections=20)


def golden_detections(model: Path) -> dict[str, Any]:
    """The detections of one model file on IMAGE (numpy engine, its deployment input size)."""
    engine = IntEngine.load(model, engine="numpy")
    image = cv2.imread(str(IMAGE), cv2.IMREAD_COLOR)
    detections = engine.detect(image, POST)
    return {
        "model": model.name,
        "sha256": hashlib.sha256(model.read_bytes()).hexdigest(),
        "image": IMAGE.relative_to(REPO).as_posix(),
        "img_size": engine.img_size,
        "post": asdict(POST),
        "boxes": [[round(float(v), 3) for v in box] for box in detections.boxes],  # x1, y1, x2, y2 pixels
        "scores": [round(float(s), 6) for s in detections.scores],
    }


def _dumps(record: dict[str, Any]) -> str:
    """JSON with one detection per line (readable diffs when the goldens are regenerated)."""
    head = {k: v for k, v in record.items() if k not in ("boxes", "scores")}
    lines = [json.dumps(head, indent=1)[:-2] + ","]
    for key in ("boxes", "scores"):
        rows = [json.dumps(row) for row in record[key]]
        lines.append(f' "{key}": [\n  ' + ",\n  ".join(rows) + "\n ]" + ("," if key == "boxes" else ""))
    return "\n".join(lines) + "\n}\n"


def main() -> int:
    GOLDEN.mkdir(parents=True, exist_ok=True)
    for old in GOLDEN.glob("*.json"):
        old.unlink()
    for model in sorted(WEIGHTS.glob("*.fdet")):
        record = golden_detections(model)
        (GOLDEN / f"{model.stem}.json").write_text(_dumps(record))
        print(f"{model.name}: {len(record['scores'])} faces, best {record['boxes'][:2]} {record['scores'][:2]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
