"""Detect faces in images, folders, glob patterns and videos (default model: the best shipped one).

    facedet detect photo.jpg                          # one image, a short text summary
    facedet detect photos/ 'more/**/*.png' --json     # folders and quoted patterns, JSON lines
    facedet detect clip.mp4 --out out/ --save-txt     # a video: annotated out/clip.mp4 + labels
    facedet detect photos/ --out out/ --save-crops    # out/crops/<image>_<k>.jpg per face

--model takes a model name (dupnet-tinier-yolo, ifq-tinier-yolo, default), an integer model file
(.fdet), an ONNX file from `facedet export MODEL --format onnx` (run by onnxruntime, the [onnx]
extra; same detections as its .fdet) or a training checkpoint (.pt; the fake-quantized torch model then runs at the
checkpoint's deployment size, and gives the same detections as the .fdet exported from it).
--json prints one object per image or video frame (file, frame for videos, width, height, boxes
as x, y, width, height, score). --out DIR writes each image (or video) with its boxes drawn;
--save-txt adds DIR/labels/<name>.txt, one face per line ``x y width height score`` in pixels
(videos: ``frame x y width height score``); --save-crops adds each face as DIR/crops/<name>_<k>.jpg.
An unreadable input is reported on stderr by name, the others still run, and the exit code is 1.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from facedet.commands.common import UsageError, check_img_size, require_extra, score, writable_dir
from facedet.commands.engine_args import add_engine_arguments, apply_engine_arguments


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``facedet detect``."""
    parser.add_argument("sources", nargs="+", metavar="SOURCE", help="image or video files, folders, glob patterns")
    parser.add_argument(
        "--model",
        metavar="NAME|FILE",
        help="model name (dupnet-tinier-yolo, ifq-tinier-yolo), .fdet file, .onnx file or .pt checkpoint; "
        "default: FACEDET_MODEL, else the best shipped model",
    )
    parser.add_argument("--out", metavar="DIR", help="write each image or video with its boxes drawn into DIR")
    parser.add_argument("--save-txt", action="store_true", help="also write DIR/labels/<name>.txt (needs --out)")
    parser.add_argument("--save-crops", action="store_true", help="also write each face to DIR/crops/ (needs --out)")
    parser.add_argument("--json", action="store_true", help="print one JSON object per image or frame (JSON lines)")
    parser.add_argument("--min-score", type=score, default=0.5, help="lowest score reported, 0..1 (default 0.5)")
    parser.add_argument("--img-size", type=int, help="network input size (a multiple of the stride, e.g. 416)")
    add_engine_arguments(parser)


class Outputs:
    """Where annotated media, labels and crops go (all under --out), and the text/JSON printout."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.as_json = args.json
        self.out = writable_dir(args.out, "--out") if args.out else None
        self.labels = writable_dir(self.out / "labels", "--out") if self.out and args.save_txt else None
        self.crops = writable_dir(self.out / "crops", "--out") if self.out and args.save_crops else None
        self.failed = 0

    def error(self, name: str | Path, reason: str) -> None:
        print(f"error: {name}: {reason}", file=sys.stderr)
        self.failed += 1

    def report(self, name: Path, image: Any, detections: Any, frame: int | None = None) -> None:
        """Print (text or JSON), append labels, write crops for one image or frame."""
        height, width = image.shape[:2]
        boxes = detections.to_json()
        if self.as_json:
            record = {"file": str(name)} | ({"frame": frame} if frame is not None else {})
            print(json.dumps(record | {"width": width, "height": height, "boxes": boxes}), flush=True)
        elif frame is None or boxes:
            where = f"{name}" if frame is None else f"{name} frame {frame}"
            print(f"{where}: {len(boxes)} face(s)")
            for b in boxes:
                print(f"  x={b['x']:.0f} y={b['y']:.0f} w={b['width']:.0f} h={b['height']:.0f} score={b['score']:.3f}")
        if self.labels is not None:
            prefix = "" if frame is None else f"{frame} "
            lines = [f"{prefix}{b['x']} {b['y']} {b['width']} {b['height']} {b['score']}\n" for b in boxes]
            with open(self.labels / f"{name.stem}.txt", "a" if frame else "w") as handle:
                handle.writelines(lines)
        if self.crops is not None:
            self._write_crops(self.crops, name, image, detections, frame)

    def _write_crops(self, crops: Path, name: Path, image: Any, detections: Any, frame: int | None) -> None:
        import cv2

        height, width = image.shape[:2]
        stem = name.stem if frame is None else f"{name.stem}_f{frame}"
        for k, (x1, y1, x2, y2) in enumerate(detections.boxes.round().astype(int)):
            crop = image[max(0, y1) : min(height, y2), max(0, x1) : min(width, x2)]
            if crop.size:
                cv2.imwrite(str(crops / f"{stem}_{k}.jpg"), crop)


def _detect_image(detector: Any, path: Path, outputs: Outputs, min_score: float) -> None:
    import cv2

    from facedet.draw import draw_detections
    from facedet.media import read_image

    image = read_image(path)
    if isinstance(image, str):
        outputs.error(path, image)
        return
    detections = detector.detect(image).filter(min_score)
    outputs.report(path, image, detections)
    if outputs.out is not None:
        target = outputs.out / path.name
        if not cv2.imwrite(str(target), draw_detections(image.copy(), detections)):
            outputs.error(target, "cannot write image (unsupported extension?)")


def _detect_video(detector: Any, path: Path, outputs: Outputs, min_score: float) -> None:
    import cv2
    from tqdm import tqdm

    from facedet.draw import draw_detections
    from facedet.media import video_frames, video_info

    fps, count = video_info(path)
    writer = None
    try:
        frames = tqdm(video_frames(path), total=count or None, desc=path.name, unit="frame", disable=None)
        for index, frame in frames:
            detections = detector.detect(frame).filter(min_score)
            outputs.report(path, frame, detections, frame=index)
            if outputs.out is not None:
                if writer is None:
                    size = (frame.shape[1], frame.shape[0])
                    target = outputs.out / (path.stem + ".mp4")
                    writer = cv2.VideoWriter(str(target), cv2.VideoWriter.fourcc(*"mp4v"), fps or 25.0, size)
                writer.write(draw_detections(frame, detections))
    except ValueError as exc:  # not a video after all
        outputs.error(path, str(exc).removeprefix(f"{path}: "))
    finally:
        if writer is not None:
            writer.release()


def run(args: argparse.Namespace) -> int:
    """Run the detector on every source; 1 if any failed, else 0 (2 for bad arguments)."""
    from tqdm import tqdm

    from facedet.anchors import PostProcess
    from facedet.media import expand_sources
    from facedet.runtime import load_detector

    if (args.save_txt or args.save_crops) and not args.out:
        raise UsageError("--save-txt and --save-crops write under --out DIR; give --out")
    check_img_size(args.img_size)
    problem = apply_engine_arguments(args)
    if problem:
        raise UsageError(problem)
    if str(args.model or "").lower().endswith(".onnx"):
        require_extra("onnx", "onnxruntime", "running an ONNX model")
    outputs = Outputs(args)  # creates and checks --out before the model loads
    # The score floor goes into decoding, so NMS never sees boxes that are then dropped.
    detector = load_detector(args.model, img_size=args.img_size, post=PostProcess(score_threshold=args.min_score))
    sources = expand_sources(args.sources)
    for source in tqdm(sources, desc="detect", unit="file", disable=None if len(sources) > 20 else True):
        if source.kind == "missing":
            outputs.error(source.path, "no such file, or no images or videos match")
        elif source.kind == "video":
            _detect_video(detector, source.path, outputs, args.min_score)
        else:
            _detect_image(detector, source.path, outputs, args.min_score)
    return 1 if outputs.failed else 0
