"""Reading request bodies with a byte limit enforced while they arrive.

A ``Content-Length`` over the limit is refused before reading; a body that grows past it
(chunked, or lying about its length) is refused as soon as the excess arrives. Multipart bodies
are parsed by Starlette behind the same limit, and only the expected field is accepted.

Bodies are read *before* a detection slot is taken, and within ``timeout`` seconds in all
(``Settings.body_timeout_s``), so a client that sends headers and then stalls holds a connection
for a bounded time and never a detection slot.
"""

from __future__ import annotations

import time
from typing import Any

import anyio
from fastapi import HTTPException, Request
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

MULTIPART_OVERHEAD = 64 * 1024  # boundary lines and part headers allowed on top of the file itself


class UploadTooLarge(Exception):
    """The request body exceeded its byte limit (-> 413)."""


class BodyTimeout(Exception):
    """The request body did not arrive in time (-> 408)."""


def limited_request(request: Request, limit: int, timeout: float | None = None) -> Request:
    """A view of ``request`` whose body stream raises ``UploadTooLarge`` once more than ``limit`` bytes
    arrive, and ``BodyTimeout`` when the whole body has not arrived ``timeout`` seconds from now."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise UploadTooLarge(
            f"upload too large: Content-Length {int(declared)} bytes exceeds the limit of {limit} bytes"
        )
    received = 0
    receive = request.receive
    deadline = None if timeout is None else time.monotonic() + timeout

    async def limited_receive() -> Any:
        nonlocal received
        if deadline is None:
            message = await receive()
        else:
            with anyio.move_on_after(max(0.0, deadline - time.monotonic())) as scope:
                message = await receive()
            if scope.cancelled_caught:
                raise BodyTimeout(
                    f"request body too slow: not received within {timeout:g} s ({received} bytes arrived)"
                )
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise UploadTooLarge(f"upload too large: more than {limit} bytes received (limit {limit} bytes)")
        return message

    return Request(request.scope, limited_receive)


async def read_stream(request: Request) -> bytes:
    """The whole body of ``request`` (limit it first with ``limited_request``)."""
    chunks = [chunk async for chunk in request.stream()]
    return b"".join(chunks)


def media_type(request: Request) -> str:
    """The lower-case media type of the Content-Type header, without parameters ("" when absent)."""
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


async def read_form_files(
    request: Request, field: str, limit: int, max_files: int, timeout: float | None = None
) -> list[UploadFile]:
    """Parse a multipart body (bounded by ``limit`` bytes and ``timeout`` seconds) and return the
    uploads of ``field``."""
    limited = limited_request(request, limit, timeout)
    try:
        form = await limited.form(max_files=max_files + 1, max_fields=8, max_part_size=64 * 1024)
    except StarletteHTTPException as exc:  # Starlette's MultiPartException -> 400 (FastAPI's is a subclass)
        if "Too many files" in str(exc.detail):  # the same answer as a batch one file over the limit
            raise HTTPException(413, f"too many files: at most {max_files} images per batch") from exc
        raise HTTPException(400, f"malformed multipart body: {exc.detail}") from exc
    names = sorted(set(form.keys()))
    wrong = [name for name in names if name != field]
    if field not in form:
        got = f" (got {', '.join(repr(n) for n in names)})" if names else " (the body has no fields)"
        raise HTTPException(422, f"multipart body has no field named {field!r}{got}; send the image(s) as {field!r}")
    if wrong:
        raise HTTPException(422, f"unexpected multipart field(s) {', '.join(map(repr, wrong))}; only {field!r} is read")
    values = form.getlist(field)
    if not all(isinstance(v, UploadFile) for v in values):
        raise HTTPException(422, f"multipart field {field!r} must be a file upload, not a text value")
    return [v for v in values if isinstance(v, UploadFile)]
