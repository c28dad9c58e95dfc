"""HTTP routes: detection, health, model metadata, metrics, and the browser demo page.

Uploads are read by hand from the ASGI stream (not by FastAPI's ``File()``), through
``service.uploads``, so the size limit is enforced while the bytes arrive. Decoding and
detection run in worker threads behind ``Gate``.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import FileResponse, PlainTextResponse

from facedet.anchors import PostProcess
from facedet.model_version import model_version
from service.images import ImageError, decode_image, read_header
from service.openapi_docs import error_responses, image_body_doc
from service.schemas import (
    BatchItem,
    BatchResponse,
    DetectResponse,
    Face,
    HealthResponse,
    ImageInfo,
    ModelInfo,
    ModelRef,
)
from service.state import Engine, ServiceState
from service.uploads import (
    MULTIPART_OVERHEAD,
    UploadTooLarge,
    limited_request,
    media_type,
    read_form_files,
    read_stream,
)

STATIC_DIR = Path(__file__).parent / "static"
DETECT_QUERY = {"min_score", "max_faces"}

router = APIRouter()


async def get_state(request: Request) -> ServiceState:
    """The app's ``ServiceState`` (a FastAPI dependency)."""
    state: ServiceState = request.app.state.service
    return state


StateDep = Annotated[ServiceState, Depends(get_state)]


async def reject_unknown_query(request: Request) -> None:
    """422 for query parameters this route does not know (a typo like ``minscore`` must not pass silently)."""
    unknown = sorted(set(request.query_params) - DETECT_QUERY)
    if unknown:
        raise HTTPException(
            422, f"unknown query parameter(s) {', '.join(unknown)}; allowed: {', '.join(sorted(DETECT_QUERY))}"
        )


MinScore = Annotated[
    float | None,
    Query(
        ge=0.0,
        le=1.0,
        allow_inf_nan=False,  # NaN is not "greater than 1": say it is not a number
        description="Drop faces scoring below this (0..1). Default: the service's default_min_score.",
    ),
]
MaxFaces = Annotated[
    int | None, Query(ge=1, le=1000, description="Return at most this many faces, best first (1..1000).")
]


def _detect_sync(state: ServiceState, engine: Engine, data: bytes, post: PostProcess) -> tuple[DetectResponse, float]:
    """Decode within the pixel budget, then detect. Runs in a worker thread."""
    header = read_header(data)  # cheap: only the header bytes; errors before any budget is taken
    with state.pixels.hold(header.pixels):
        return _decode_and_detect(engine, state.info, data, state.settings.max_pixels, post)


def _decode_and_detect(
    engine: Engine, info: dict[str, Any], data: bytes, max_pixels: int, post: PostProcess
) -> tuple[DetectResponse, float]:
    """Decode and detect (the engine letterboxes to its input size itself)."""
    start = time.perf_counter()
    image, header = decode_image(data, max_pixels)
    height, width = image.shape[:2]
    t0 = time.perf_counter()
    detections = engine.detect(image, post)
    inference = time.perf_counter() - t0
    detections = detections.filter(post.score_threshold, post.max_detections)
    faces = [Face(**face) for face in detections.to_json()]
    response = DetectResponse(
        faces=faces,
        count=len(faces),
        image=ImageInfo(width=width, height=height, format=header.format),
        model=ModelRef(
            name=str(info.get("name", "unknown")),
            version=str(info.get("format_version", "unknown")),
            sha256=info.get("sha256"),
        ),
        inference_ms=round(inference * 1000, 3),
        total_ms=round((time.perf_counter() - start) * 1000, 3),
    )
    return response, inference


def _require_engine(state: ServiceState) -> Engine:
    if state.engine is None:
        raise HTTPException(503, "model not loaded yet; check /readyz", headers={"Retry-After": "1"})
    return state.engine


@asynccontextmanager
async def _admitted(state: ServiceState) -> AsyncIterator[Engine]:
    engine = _require_engine(state)
    state.gate.enter()  # raises Busy -> 503
    try:
        yield engine
    finally:
        state.gate.leave()


def _post(state: ServiceState, min_score: float | None, max_faces: int | None) -> PostProcess:
    settings = state.settings
    return PostProcess(
        score_threshold=settings.default_min_score if min_score is None else min_score,
        nms_iou=settings.nms_iou,
        max_detections=settings.default_max_faces if max_faces is None else max_faces,
    )


async def _run(state: ServiceState, engine: Engine, data: bytes, post: PostProcess) -> DetectResponse:
    call: Callable[[], tuple[DetectResponse, float]] = lambda: _detect_sync(  # noqa: E731
        state, engine, data, post
    )
    response, inference = await state.gate.run(call)
    state.metrics.observe_detection(inference, response.count)
    return response


@router.post(
    "/v1/detect",
    response_model=DetectResponse,
    summary="Detect faces in one image",
    description="Send one image as multipart field `file` or as the raw body. Boxes are x, y, width, height in "
    "original-image pixels, best score first.",
    responses=error_responses(400, 413, 415, 422, 503),
    openapi_extra=image_body_doc(batch=False),
    dependencies=[Depends(reject_unknown_query)],
    tags=["detection"],
)
async def detect(
    request: Request,
    state: StateDep,
    min_score: MinScore = None,
    max_faces: MaxFaces = None,
) -> DetectResponse:
    """Detect faces in one uploaded image."""
    _require_engine(state)
    # The body is read first, bounded in size and time, so a slow client never holds a detection slot.
    limit, timeout = state.settings.max_upload_bytes, state.settings.body_timeout_s
    if media_type(request) == "multipart/form-data":
        files = await read_form_files(request, "file", limit + MULTIPART_OVERHEAD, max_files=1, timeout=timeout)
        if len(files) != 1:
            raise HTTPException(422, f"send exactly one 'file' (got {len(files)}); use /v1/detect/batch for several")
        data = await files[0].read()
        if len(data) > limit:
            raise UploadTooLarge(f"upload too large: {len(data)} bytes exceeds the limit of {limit} bytes")
    else:  # raw body, whatever the declared type (curl --data-binary says form-urlencoded): bytes decide
        data = await read_stream(limited_request(request, limit, timeout))
    async with _admitted(state) as engine:
        return await _run(state, engine, data, _post(state, min_score, max_faces))


@router.post(
    "/v1/detect/batch",
    response_model=BatchResponse,
    summary="Detect faces in several images",
    description="Multipart body with one part named `files` per image. Each image gets its own status: a bad "
    "image is reported in its item and does not fail the others.",
    responses=error_responses(400, 413, 415, 422, 503),
    openapi_extra=image_body_doc(batch=True),
    dependencies=[Depends(reject_unknown_query)],
    tags=["detection"],
)
async def detect_batch(
    request: Request,
    state: StateDep,
    min_score: MinScore = None,
    max_faces: MaxFaces = None,
) -> BatchResponse:
    """Detect faces in each uploaded image, in order."""
    settings = state.settings
    if media_type(request) != "multipart/form-data":
        raise HTTPException(415, "send the images as a multipart/form-data body with one 'files' part per image")
    _require_engine(state)
    files = await read_form_files(
        request, "files", settings.max_batch_bytes, settings.max_batch_files, timeout=settings.body_timeout_s
    )
    if len(files) > settings.max_batch_files:
        raise HTTPException(413, f"too many files: at most {settings.max_batch_files} images per batch")
    async with _admitted(state) as engine:
        post = _post(state, min_score, max_faces)
        items: list[BatchItem] = []
        for upload in files:
            data = await upload.read()
            if len(data) > settings.max_upload_bytes:
                error = f"upload too large: {len(data)} bytes exceeds the limit of {settings.max_upload_bytes} bytes"
                items.append(BatchItem(filename=upload.filename, status=413, error=error))
                continue
            try:
                result = await _run(state, engine, data, post)
            except ImageError as exc:
                items.append(BatchItem(filename=upload.filename, status=exc.status_code, error=exc.detail))
            else:
                items.append(BatchItem(filename=upload.filename, status=200, result=result))
        ok = sum(item.status == 200 for item in items)
        return BatchResponse(results=items, ok=ok, failed=len(items) - ok)


@router.get("/healthz", response_model=HealthResponse, summary="Liveness", tags=["health"])
async def healthz(state: StateDep) -> HealthResponse:
    """Always 200 while the process serves requests (it never touches the model)."""
    return HealthResponse(status="ok", model_loaded=state.engine is not None)


@router.get(
    "/readyz", response_model=HealthResponse, summary="Readiness", tags=["health"], responses=error_responses(503)
)
async def readyz(state: StateDep) -> HealthResponse:
    """200 when a detection sent now would be admitted: the model is loaded and the admission
    gate has room; 503 (with the reason) otherwise, so a load balancer stops sending work."""
    if state.engine is None:
        raise HTTPException(503, state.load_error or "model not loaded yet")
    gate = state.gate
    if gate.admitted >= gate.capacity:
        raise HTTPException(
            503,
            f"saturated: {gate.admitted} detection requests in progress (limit {gate.capacity})",
            {"Retry-After": "1"},
        )
    return HealthResponse(status="ok", model_loaded=True)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


@router.get(
    "/v1/model",
    response_model=ModelInfo,
    summary="Loaded model metadata",
    tags=["model"],
    responses=error_responses(503),
)
async def model_info(state: StateDep) -> ModelInfo:
    """Name, format version, stored bytes, input size, FDDB figures (when recorded in the file) and limits."""
    if state.engine is None:
        raise HTTPException(503, "model not loaded yet; check /readyz")
    info = _jsonable(dict(state.info))
    # Listed fields, plus keys that would reveal server file-system paths (the file name is given).
    known = {"name", "format_version", "file_bytes", "stored_bytes", "input_size", "sha256", "metrics"}
    known |= {"source", "path"}
    input_size = info.get("input_size")
    settings = state.settings
    return ModelInfo(
        name=str(info.get("name", "unknown")),
        format_version=str(info.get("format_version", "unknown")),
        version=model_version(info.get("provenance"), info.get("sha256")),
        file=state.model_path.name if state.model_path else None,
        file_bytes=info.get("file_bytes"),
        stored_bytes=info.get("stored_bytes"),
        input_size=input_size if isinstance(input_size, int | list) else None,
        sha256=info.get("sha256"),
        metrics=info.get("metrics") if isinstance(info.get("metrics"), dict) else None,
        extra={k: v for k, v in info.items() if k not in known},
        limits={
            "max_upload_bytes": settings.max_upload_bytes,
            "max_pixels": settings.max_pixels,
            "max_batch_files": settings.max_batch_files,
            "max_batch_bytes": settings.max_batch_bytes,
            "max_concurrency": settings.max_concurrency,
            "max_queue": settings.max_queue,
            "default_min_score": settings.default_min_score,
        },
    )


@router.get(
    "/metrics",
    response_class=PlainTextResponse,
    summary="Prometheus metrics",
    description="Text exposition format: request counts by route, method and status; latency histograms. "
    "With several workers, the totals of all of them.",
    tags=["health"],
)
async def metrics(state: StateDep) -> PlainTextResponse:
    """Counters, histograms and gauges of the whole service (all workers of one facedet serve)."""
    return PlainTextResponse(state.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")


@router.get("/", include_in_schema=False)
async def index() -> FileResponse:
    """The browser demo page."""
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html")
