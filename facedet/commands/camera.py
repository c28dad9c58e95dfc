"""Live camera demo: detect faces on a camera, video file or stream, drawing boxes, scores and FPS.

With a window, q or Esc quits. --headless writes the annotated video to --output instead (for a
machine with no screen). A source that cannot be opened exits with code 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from facedet.commands.engine_args import add_engine_arguments, apply_engine_arguments


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``facedet camera``."""
    parser.add_argument("--source", default="0", help="camera index (0), video file, or stream URL (default: 0)")
    parser.add_argument(
        "--model", metavar="FILE", help="integer model file (default: FACEDET_MODEL or weights/default.fdet)"
    )
    parser.add_argument("--headless", action="store_true", help="no window; use with --output to save the video")
    parser.add_argument("--output", type=Path, metavar="FILE", help="write the annotated video here (.mp4 or .avi)")
    parser.add_argument("--max-frames", type=int, metavar="N", help="stop after N frames")
    parser.add_argument("--min-score", type=float, default=0.5, help="drop faces scoring below this (default: 0.5)")
    add_engine_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Load the engine, open the source and loop; 2 on a bad source, model or output."""
    from facedet.engine import IntEngine
    from facedet.model_file import ModelFileError
    from facedet.paths import default_model_path
    from service.camera import CameraError, parse_source, run_camera

    if args.max_frames is not None and args.max_frames < 1:
        print("error: --max-frames must be >= 1", file=sys.stderr)
        return 2
    problem = apply_engine_arguments(args)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    try:
        engine = IntEngine.load(Path(args.model) if args.model else default_model_path())
    except (FileNotFoundError, ModelFileError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        stats = run_camera(
            engine,
            parse_source(args.source),
            headless=args.headless,
            output=args.output,
            max_frames=args.max_frames,
            min_score=args.min_score,
        )
    except CameraError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    where = f", wrote {args.output}" if args.output else ""
    print(f"{stats.frames} frames, {stats.faces} faces, {stats.fps:.1f} FPS{where}")
    return 0
