"""Run the REST face-detection service (FastAPI + uvicorn, integer engine, no torch).

Settings not given as flags come from FACEDET_* environment variables (see service/settings.py).
The service is stateless: scale it with --workers N, or with more processes/containers behind a
load balancer.
"""

from __future__ import annotations

import argparse
import os
import sys

from facedet.commands.common import UsageError, positive_int, require_extra, score


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``facedet serve``."""
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default: 127.0.0.1; 0.0.0.0 = all)")
    parser.add_argument("--port", type=int, default=8000, help="TCP port (default: 8000)")
    parser.add_argument(
        "--model", metavar="NAME|FILE", help="model name or integer model file (default: FACEDET_MODEL, else the best)"
    )
    parser.add_argument("--workers", type=positive_int, default=1, help="uvicorn worker processes (default: 1)")
    parser.add_argument("--max-upload-mb", type=float, help="largest upload in MiB (default: 10)")
    parser.add_argument("--max-pixels", type=positive_int, help="largest width*height accepted (default: 25,000,000)")
    parser.add_argument(
        "--max-concurrency", type=positive_int, help="detections running at once per worker (default: CPUs, <= 4)"
    )
    parser.add_argument("--min-score", type=score, help="default min_score when a request omits it (default: 0.5)")
    parser.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])


def settings_env(args: argparse.Namespace) -> dict[str, str]:
    """The FACEDET_* environment variables that carry the flags to every worker process."""
    env: dict[str, str] = {"FACEDET_LOG_LEVEL": args.log_level}
    if args.model:
        env["FACEDET_MODEL"] = os.path.abspath(args.model)
    if args.max_upload_mb is not None:
        env["FACEDET_MAX_UPLOAD_BYTES"] = str(int(args.max_upload_mb * 1024 * 1024))
    if args.max_pixels is not None:
        env["FACEDET_MAX_PIXELS"] = str(args.max_pixels)
    if args.max_concurrency is not None:
        env["FACEDET_MAX_CONCURRENCY"] = str(args.max_concurrency)
    if args.min_score is not None:
        env["FACEDET_DEFAULT_MIN_SCORE"] = str(args.min_score)
    return env


def run(args: argparse.Namespace) -> int:
    """Check the flags and load the model once (a bad file is one line here, not a worker's
    traceback), then run uvicorn until interrupted."""
    require_extra("serve", "fastapi", "`facedet serve`")
    import uvicorn

    from facedet.engine import IntEngine
    from facedet.paths import resolve_model

    if not 0 < args.port < 65536:
        raise UsageError(f"--port {args.port}: must be 1..65535")
    if args.max_upload_mb is not None and args.max_upload_mb <= 0:
        raise UsageError(f"--max-upload-mb {args.max_upload_mb}: must be positive")
    model = resolve_model(args.model)
    IntEngine.load(model)  # ModelFileError (a ValueError): one line, exit 2
    args.model = str(model.resolve())
    os.environ.update(settings_env(args))  # workers (separate processes) read settings from here
    print(f"facedet: serving {model} on http://{args.host}:{args.port} ({args.workers} worker(s))", file=sys.stderr)
    uvicorn.run(
        "service.app:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level=args.log_level,
        proxy_headers=False,
    )
    return 0
