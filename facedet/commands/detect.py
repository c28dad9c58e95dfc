"""Detect faces in images with the integer engine (default: the shipped weights/default.fdet).

--model takes an integer model file (.fdet) or a training checkpoint (.pt; the fake-quantized
torch model then runs, and gives the same detections as the .fdet exported from it). Prints one
JSON object per image with --json (file, width, height, boxes as x, y, width, height, score);
--out DIR writes a copy of each image with its boxes drawn. An unreadable image is reported on
stderr by name, the others still run, and the exit code is then 1.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from facedet.commands.engine_args import add_engine_arguments, apply_engine_arguments


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``facedet detect``."""
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="image files")
    parser.add_argument(
        "--model", metavar="FILE", help="integer model (.fdet) or checkpoint (.pt); default: FACEDET_MODEL or weights/"
    )
    parser.add_argument("--out", metavar="DIR", help="write each image with its boxes drawn into DIR")
    parser.add_argument("--json", action="store_true", help="print one JSON object per image (JSON lines)")
    parser.add_argument("--min-score", type=float, default=0.5, help="lowest score reported (default 0.5)")
    parser.add_argument("--img-size", type=int, help="network input size (a multiple of the stride)")
    add_engine_arguments(parser)


def _draw(image: Any, detections: Any) -> Any:
    try:
        from facedet.draw import draw_detections
    except ImportError:  # drawing is optional: plain rectangles will do
        import cv2

        for x1, y1, x2, y2 in detections.boxes.round().astype(int):
            cv2.rectangle(image, (x1, y1), (x2, y2), (0, 255, 0), 2)
        return image
    return draw_detections(image, detections)


def _read_image(name: str) -> Any:
    """The BGR image, or a reason string (decoded from bytes: no OpenCV warnings on stderr)."""
    import cv2
    import numpy as np

    try:
        data = Path(name).read_bytes()
    except OSError as exc:
        return f"cannot read image: {exc.strerror or exc}"
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) if data else None
    return image if image is not None else "cannot read image: not a decodable image file"


def run(args: argparse.Namespace) -> int:
    """Run the detector on every image; 1 if any image failed, else 0."""
    import cv2

    from facedet.anchors import PostProcess
    from facedet.runtime import load_detector

    problem = apply_engine_arguments(args)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    try:
        if args.model:
            model_path: str | Path = args.model
        else:
            from facedet.paths import default_model_path

            model_path = default_model_path()
        # The score floor goes into decoding, so NMS never sees boxes that are then dropped.
        detector = load_detector(model_path, img_size=args.img_size, post=PostProcess(score_threshold=args.min_score))
    except (FileNotFoundError, ImportError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    out_dir = Path(args.out) if args.out else None
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
    failed = 0
    for name in args.images:
        image = _read_image(name)
        if isinstance(image, str):
            print(f"error: {name}: {image}", file=sys.stderr)
            failed += 1
            continue
        detections = detector.detect(image).filter(args.min_score)
        height, width = image.shape[:2]
        if args.json:
            record = {"file": name, "width": width, "height": height, "boxes": detections.to_json()}
            print(json.dumps(record), flush=True)
        else:
            print(f"{name}: {len(detections)} face(s)")
            for box in detections.to_json():
                print(
                    f"  x={box['x']:.0f} y={box['y']:.0f} w={box['width']:.0f} h={box['height']:.0f} "
                    f"score={box['score']:.3f}"
                )
        if out_dir is not None:
            target = out_dir / Path(name).name
            if not cv2.imwrite(str(target), _draw(image, detections)):
                print(f"error: {target}: cannot write image", file=sys.stderr)
                failed += 1
    return 1 if failed else 0
