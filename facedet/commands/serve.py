"""Run the REST face-detection service (FastAPI + uvicorn, integer engine, no torch).

Settings not given as flags come from FACEDET_* environment variables (see service/settings.py).
The service is stateless: scale it with --workers N, or with more processes/containers behind a
load balancer.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

from facedet.commands.common import UsageError, positive_int, require_extra, score
from facedet.commands.engine_args import add_engine_arguments, apply_engine_arguments


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
    parser.add_argument(
        "--max-connections", type=positive_int, help="most open connections per worker; beyond it 503 (default: 128)"
    )
    parser.add_argument(
        "--header-timeout", type=float, metavar="S", help="close connections without complete headers after S s (10)"
    )
    parser.add_argument("--body-timeout", type=float, metavar="S", help="408 when a body takes over S s (default: 30)")
    parser.add_argument("--no-docs", action="store_true", help="do not serve /docs, /redoc and /openapi.json")
    parser.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    add_engine_arguments(parser)


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
    optional = {
        "FACEDET_MAX_CONNECTIONS": args.max_connections,
        "FACEDET_HEADER_TIMEOUT_S": args.header_timeout,
        "FACEDET_BODY_TIMEOUT_S": args.body_timeout,
    }
    env |= {name: str(value) for name, value in optional.items() if value is not None}
    if args.no_docs:
        env["FACEDET_DOCS_ENABLED"] = "false"
    return env


@contextmanager
def shared_metrics_dir(workers: int) -> Iterator[None]:
    """With several workers: a private temporary directory, passed as FACEDET_METRICS_DIR, through
    which they add up their /metrics figures (service.metrics); removed when serve exits."""
    if workers == 1:
        yield
        return
    with tempfile.TemporaryDirectory(prefix="facedet-metrics-") as path:
        os.environ["FACEDET_METRICS_DIR"] = path
        yield


def run(args: argparse.Namespace) -> int:
    """Check the flags and load the model once (a bad file is one line here, not a worker's
    traceback), then run uvicorn until interrupted."""
    require_extra("serve", "fastapi", "`facedet serve`")
    import uvicorn

    from facedet.engine import IntEngine
    from facedet.paths import resolve_model
    from service.server import uvicorn_options
    from service.settings import Settings

    if not 0 < args.port < 65536:
        raise UsageError(f"--port {args.port}: must be 1..65535")
    if args.max_upload_mb is not None and args.max_upload_mb <= 0:
        raise UsageError(f"--max-upload-mb {args.max_upload_mb}: must be positive")
    problem = apply_engine_arguments(args)  # FACEDET_ENGINE and thread limits reach every worker
    if problem:
        raise UsageError(problem)
    model = resolve_model(args.model)
    IntEngine.load(model)  # ModelFileError (a ValueError): one line, exit 2
    args.model = str(model.resolve())
    os.environ.update(settings_env(args))  # workers (separate processes) read settings from here
    try:
        settings = Settings()
    except ValueError as exc:  # pydantic's ValidationError: a FACEDET_* value out of range
        raise UsageError(f"invalid setting: {' '.join(str(exc).split())}") from None
    print(f"facedet: serving {model} on http://{args.host}:{args.port} ({args.workers} worker(s))", file=sys.stderr)
    with shared_metrics_dir(args.workers):
        uvicorn.run(
            "service.app:create_app",
            factory=True,
            host=args.host,
            port=args.port,
            workers=args.workers,
            log_level=args.log_level,
            **uvicorn_options(settings),
        )
    return 0
