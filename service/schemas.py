"""Pydantic models of every response body; they are also the OpenAPI schema shown at /docs."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field


class ErrorResponse(BaseModel):
    """Every error, whatever its status code."""

    detail: str = Field(description="What was wrong, in words, e.g. 'image too large: 20000x20000 = ...'.")


class Face(BaseModel):
    """One detected face, in original-image pixels (top-left origin)."""

    x: float = Field(description="Left edge of the box, pixels from the image's left side.")
    y: float = Field(description="Top edge of the box, pixels from the image's top.")
    width: float = Field(description="Box width in pixels.")
    height: float = Field(description="Box height in pixels.")
    score: float = Field(ge=0.0, le=1.0, description="Detector confidence in [0, 1].")


class ImageInfo(BaseModel):
    """The uploaded image as decoded (EXIF orientation applied)."""

    width: int = Field(description="Image width in pixels.")
    height: int = Field(description="Image height in pixels.")
    format: str = Field(description="Format sniffed from the magic bytes: jpeg, png, webp or bmp.")


class ModelRef(BaseModel):
    """Which model produced the detections."""

    name: str = Field(description="Model family, e.g. 'dupnet-tinier-yolo'.")
    version: str = Field(description="Model file format version.")
    sha256: str | None = Field(default=None, description="SHA-256 of the model file (identifies the exact weights).")


class DetectResponse(BaseModel):
    """Faces found in one image."""

    faces: list[Face] = Field(description="Detections, best score first, after min_score and max_faces.")
    count: int = Field(description="Number of faces returned (len(faces)).")
    image: ImageInfo = Field(description="Size and format of the uploaded image; boxes are in these pixels.")
    model: ModelRef = Field(description="The model that ran.")
    inference_ms: float = Field(description="Time spent in the detector, milliseconds.")
    total_ms: float = Field(description="Decode + resize + detect time, milliseconds (excludes upload).")


class BatchItem(BaseModel):
    """The outcome for one image of a batch: either ``result`` or ``error``."""

    filename: str | None = Field(default=None, description="The multipart filename of this part, if given.")
    status: int = Field(description="HTTP-style status of this image: 200, or the code a single /v1/detect would give.")
    result: DetectResponse | None = Field(default=None, description="Detections when status is 200.")
    error: str | None = Field(default=None, description="What was wrong with this image when status is not 200.")


class BatchResponse(BaseModel):
    """Per-image results in upload order. One bad image does not fail the others."""

    results: list[BatchItem] = Field(description="One entry per uploaded file, in order.")
    ok: int = Field(description="Images that were processed successfully.")
    failed: int = Field(description="Images that were rejected (see each item's error).")


class HealthResponse(BaseModel):
    """Liveness / readiness."""

    status: Literal["ok"] = Field(
        description="Always 'ok': /healthz answers while the process lives; /readyz answers 503 (with the reason) "
        "until the model is loaded and while the service is saturated."
    )
    model_loaded: bool = Field(description="Whether the integer model is loaded.")


class ModelInfo(BaseModel):
    """Metadata of the loaded integer model."""

    name: str = Field(description="Model family, e.g. 'dupnet-tinier-yolo'.")
    format_version: str = Field(description="Model file format version.")
    version: str = Field(
        description="The model file's version, <export date>+<sha256 prefix> (as `facedet summary FILE` prints it)."
    )
    file: str | None = Field(default=None, description="Model file name (no directory).")
    file_bytes: int | None = Field(default=None, description="Size of the model file in bytes.")
    stored_bytes: int | None = Field(default=None, description="Bytes of stored weights (packed integers).")
    input_size: int | list[int] | None = Field(default=None, description="Network input size in pixels.")
    sha256: str | None = Field(default=None, description="SHA-256 of the model file.")
    metrics: dict[str, Any] | None = Field(
        default=None, description="Accuracy figures recorded in the file (e.g. FDDB discrete/continuous scores)."
    )
    extra: dict[str, Any] = Field(default_factory=dict, description="Any other metadata the model file carries.")
    limits: dict[str, Any] = Field(
        default_factory=dict, description="Service limits: upload bytes, pixels, batch size, concurrency."
    )
