"""Live camera demo: detect faces on a camera, video file or stream, drawing boxes, scores and FPS.

With a window, q or Esc quits; the window needs the camera extra (``pip install
'facedet-tiny[camera]'``). --headless writes the annotated video to --output instead (for a
machine with no screen), with a progress bar. A source that cannot be opened exits with code 2.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from facedet.commands.common import UsageError, positive_int, score, writable_file
from facedet.commands.engine_args import add_engine_arguments, apply_engine_arguments


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``facedet camera``."""
    parser.add_argument("--source", default="0", help="camera index (0), video file, or stream URL (default: 0)")
    parser.add_argument(
        "--model", metavar="NAME|FILE", help="model name or integer model file (default: FACEDET_MODEL, else the best)"
    )
    parser.add_argument("--headless", action="store_true", help="no window; needs --output to save the video")
    parser.add_argument("--output", type=Path, metavar="FILE", help="write the annotated video here (.mp4 or .avi)")
    parser.add_argument("--max-frames", type=positive_int, metavar="N", help="stop after N frames")
    parser.add_argument("--min-score", type=score, default=0.5, help="drop faces scoring below this (default: 0.5)")
    add_engine_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Load the engine, open the source and loop; 2 on a bad source, model or output."""
    from tqdm import tqdm

    from facedet.engine import IntEngine
    from facedet.paths import resolve_model
    from service.camera import CameraError, parse_source, run_camera

    if args.headless and args.output is None:
        raise UsageError("--headless shows no window, so it needs --output FILE (.mp4 or .avi) to write the video")
    if args.output is not None:
        writable_file(args.output, "--output")
    problem = apply_engine_arguments(args)
    if problem:
        raise UsageError(problem)
    engine = IntEngine.load(resolve_model(args.model))
    frames = _expected_frames(args.source, args.max_frames)
    with tqdm(total=frames, desc="camera", unit="frame", disable=None if args.headless else True) as bar:
        try:
            stats = run_camera(
                engine,
                parse_source(args.source),
                headless=args.headless,
                output=args.output,
                max_frames=args.max_frames,
                min_score=args.min_score,
                on_frame=lambda _frame, _detections: bar.update(1),
            )
        except CameraError as exc:
            raise UsageError(str(exc)) from None
        except KeyboardInterrupt:
            return 130
    where = f", wrote {args.output}" if args.output else ""
    print(f"{stats.frames} frames, {stats.faces} faces, {stats.fps:.1f} FPS{where}")
    return 0


def _expected_frames(source: str, max_frames: int | None) -> int | None:
    """Frames the run will take, for the progress bar (None for a camera or a stream)."""
    if not Path(source).is_file():
        return max_frames
    from facedet.media import video_info

    count = video_info(source)[1]
    return min(count, max_frames) if count and max_frames else (count or max_frames)
