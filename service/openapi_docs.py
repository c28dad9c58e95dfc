"""OpenAPI documentation pieces shared by the detection routes: error responses and request bodies."""

from __future__ import annotations

from typing import Any

from service.schemas import ErrorResponse


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` entry documenting each HTTP error code a route can return."""
    text = {
        400: "Empty body, or a malformed multipart body.",
        413: "Upload larger than the byte limit (checked while reading), or more pixels than allowed "
        "(checked from the image header before decoding), or too many files in a batch.",
        415: "A recognised image format that is not supported (GIF, TIFF, HEIF, ...), or a batch that is not "
        "multipart; JPEG, PNG, WebP and BMP are accepted, sniffed from the magic bytes.",
        422: "Not an image, a truncated or corrupt image, a wrong multipart field name, "
        "an unknown query parameter, or a parameter out of range.",
        503: "The model is not loaded yet, or the service is saturated (retry after the Retry-After seconds).",
    }
    return {code: {"model": ErrorResponse, "description": text[code]} for code in codes}


def image_body_doc(batch: bool) -> dict[str, Any]:
    """The request-body schema of an image route: one image (multipart or raw) or a multipart batch."""
    if batch:
        multipart = {
            "type": "object",
            "required": ["files"],
            "properties": {
                "files": {
                    "type": "array",
                    "items": {"type": "string", "format": "binary"},
                    "description": "Several images (JPEG, PNG, WebP or BMP), each one part named 'files'.",
                }
            },
        }
        return {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": multipart}}}}
    multipart = {
        "type": "object",
        "required": ["file"],
        "properties": {
            "file": {"type": "string", "format": "binary", "description": "The image (JPEG, PNG, WebP or BMP)."}
        },
    }
    raw = {"schema": {"type": "string", "format": "binary"}}
    content: dict[str, Any] = {"multipart/form-data": {"schema": multipart}}
    for media in ("image/jpeg", "image/png", "image/webp", "image/bmp", "application/octet-stream"):
        content[media] = raw
    return {
        "requestBody": {
            "required": True,
            "description": "The image, either as a multipart field named 'file' or as the raw request body. "
            "The format is sniffed from the bytes; the declared content type is not trusted.",
            "content": content,
        }
    }
