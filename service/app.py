"""The FastAPI application factory.

``create_app()`` builds a fresh app; nothing is loaded on import. The integer model is loaded
once, in the lifespan start-up (in a worker thread), unless an engine is passed in (tests).
Run it with ``facedet serve`` or ``uvicorn service.app:create_app --factory``.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio.to_thread
import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from facedet import __version__
from service.allocator import tune_malloc
from service.images import ImageError
from service.metrics import Metrics, MetricsMiddleware
from service.routes import STATIC_DIR, router
from service.security import SecurityHeadersMiddleware
from service.settings import Settings
from service.state import Busy, Engine, Gate, PixelBudget, ServiceState
from service.uploads import BodyTimeout, UploadTooLarge

logger = logging.getLogger("facedet.service")

DESCRIPTION = """Detect faces with the torch-free integer engine.

* `POST /v1/detect`: one image (multipart field `file`, or the raw body); JPEG, PNG, WebP, BMP.
* `POST /v1/detect/batch`: several images (multipart fields `files`).
* Boxes are `x, y, width, height` in original-image pixels, with a `score` in [0, 1].
* Every error is JSON `{"detail": "..."}`: 400 empty/malformed body, 413 upload or pixel count over the
  limit, 415 unsupported format, 422 not an image / corrupt / bad field or parameter, 503 not ready or busy.

The service is stateless: scale it with `facedet serve --workers N` or more containers behind a load balancer.
"""


def _load_engine(state: ServiceState) -> None:
    """Resolve the model path and load the engine (runs in a worker thread at start-up)."""
    from facedet.engine import IntEngine  # torch-free; imported here so importing the app stays cheap
    from facedet.paths import resolve_model

    path = resolve_model(state.settings.model_path)  # None: FACEDET_MODEL, else the shipped default
    state.model_path = path
    engine = IntEngine.load(path)  # validates every manifest field (facedet.engine.validate)
    try:  # refuse to start with a model that cannot run: one detection on a blank frame
        engine.detect(np.zeros((64, 64, 3), np.uint8))
    except Exception as exc:  # noqa: BLE001 (whatever breaks, the service must not report ready)
        raise ValueError(f"{path}: model cannot run: {type(exc).__name__}: {exc}") from exc
    state.info = dict(engine.info)
    state.engine = engine
    logger.info("loaded model %s (%s) from %s", state.info.get("name"), state.info.get("sha256"), path)


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for error in exc.errors():
        loc = [str(x) for x in error.get("loc", ())]
        where = f"{loc[0]} parameter {'.'.join(loc[1:])!r}" if len(loc) > 1 else ".".join(loc) or "request"
        value = f" (got {error['input']!r})" if "input" in error and error["input"] is not None else ""
        parts.append(f"{where}: {error.get('msg', 'invalid')}{value}")
    return "; ".join(parts) or "invalid request"


def _install_error_handlers(app: FastAPI, state: ServiceState) -> None:
    async def image_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ImageError)
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code)

    async def too_large(_: Request, exc: Exception) -> JSONResponse:
        # The rest of the body is not read: tell the client the connection will not be reused.
        return JSONResponse({"detail": str(exc)}, status_code=413, headers={"Connection": "close"})

    async def busy(_: Request, exc: Exception) -> JSONResponse:
        state.metrics.count_busy()
        return JSONResponse({"detail": str(exc)}, status_code=503, headers={"Retry-After": "1"})

    async def invalid(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return JSONResponse({"detail": _validation_message(exc)}, status_code=422)

    async def http_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        return JSONResponse({"detail": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers)

    async def too_slow(_: Request, exc: Exception) -> JSONResponse:
        state.metrics.count_body_timeout()
        logger.warning("%s", exc)
        return JSONResponse({"detail": str(exc)}, status_code=408, headers={"Connection": "close"})

    async def gone(request: Request, _: Exception) -> Response:
        # The client closed the connection mid-upload: its doing, so one line and no traceback;
        # 499 (nginx's "client closed request") keeps it out of the 5xx counts.
        state.metrics.count_disconnect()
        client = f"{request.client.host}:{request.client.port}" if request.client else "client"
        logger.warning(
            "%s disconnected before the request body was read (%s %s)", client, request.method, request.url.path
        )
        return Response(status_code=499)

    async def crash(_: Request, exc: Exception) -> JSONResponse:
        logger.exception("unhandled error", exc_info=exc)
        return JSONResponse({"detail": f"internal server error ({type(exc).__name__})"}, status_code=500)

    app.add_exception_handler(ImageError, image_error)
    app.add_exception_handler(UploadTooLarge, too_large)
    app.add_exception_handler(Busy, busy)
    app.add_exception_handler(BodyTimeout, too_slow)
    app.add_exception_handler(ClientDisconnect, gone)
    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, crash)


def create_app(settings: Settings | None = None, engine: Engine | None = None) -> FastAPI:
    """Build the service.

    Args:
        settings: configuration; default ``Settings()`` (``FACEDET_*`` environment variables).
        engine: an already loaded engine (tests); default: load ``settings.model_path`` (or the
            default model) once at start-up.

    Returns:
        A FastAPI app; its ``state.service`` holds the ``ServiceState``.
    """
    settings = settings or Settings()
    logging.getLogger("facedet").setLevel(settings.log_level.upper())
    if settings.malloc_tuning:  # before the worker threads exist, so none gets an arena of its own
        logger.debug("malloc settings applied: %s", tune_malloc() or "none (not glibc, or set by the environment)")
    metrics = Metrics(settings.metrics_dir)
    state = ServiceState(
        settings=settings,
        metrics=metrics,
        gate=Gate(settings.max_concurrency, settings.max_queue),
        pixels=PixelBudget(max(settings.pixel_budget, settings.max_pixels)),  # one largest image always fits
        engine=engine,
    )
    if engine is not None:
        state.info = dict(engine.info)
    metrics.gauges = state.gauges

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[dict[str, Any]]:
        if state.engine is None:
            try:
                await anyio.to_thread.run_sync(_load_engine, state)
            except (OSError, ValueError) as exc:
                state.load_error = f"cannot load model: {exc}"
                logger.error("%s", state.load_error)
                raise RuntimeError(state.load_error) from exc
        metrics.publish()  # with several workers, the others' /metrics count this one from now on
        try:
            yield {}
        finally:
            state.gate.close()

    # FastAPIOffline: FastAPI whose /docs and /redoc load Swagger UI and ReDoc from assets in the
    # fastapi-offline package (served under /static-offline-docs), not from a CDN: they work air-gapped.
    # With docs off (--no-docs) a plain FastAPI without /docs, /redoc and /openapi.json (FastAPIOffline
    # needs an OpenAPI URL).
    options: dict[str, Any] = {
        "title": "facedet",
        "version": __version__,
        "description": DESCRIPTION,
        "lifespan": lifespan,
        "responses": {500: {"description": "Unexpected server error (JSON `detail`)."}},
    }
    if settings.docs_enabled:
        app = FastAPIOffline(**options)
    else:
        app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None, **options)
    app.state.service = state
    _install_error_handlers(app, state)
    if settings.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["GET", "POST"])
    app.add_middleware(SecurityHeadersMiddleware)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app
