"""Security headers on every HTTP response (pure ASGI middleware, no dependency).

- ``X-Content-Type-Options: nosniff``: browsers must not guess a type (an upload echoed in an
  error could otherwise be sniffed as HTML);
- ``X-Frame-Options: DENY`` and CSP ``frame-ancestors 'none'``: no framing (click-jacking);
- ``Referrer-Policy: no-referrer``;
- ``Content-Security-Policy``: the demo page and its static files may load only same-origin
  scripts, styles and connections (images also from ``blob:``/``data:`` URLs, which the page
  uses for previews); JSON and text answers get ``default-src 'none'``. The interactive docs
  (``/docs``, ``/redoc``) are pages with inline scripts (Swagger UI and ReDoc assets served
  offline from ``/static-offline-docs``), so they get no CSP header.

The ``server: uvicorn`` banner is switched off where uvicorn is started (``facedet serve``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

PAGE_CSP = (
    "default-src 'self'; img-src 'self' blob: data:; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
API_CSP = "default-src 'none'; frame-ancestors 'none'"
DOCS_PATHS = ("/docs", "/redoc")
COMMON = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
)


def csp_for(path: str) -> str | None:
    """The Content-Security-Policy of a request path (None for the docs pages and their inline scripts)."""
    if path.startswith(DOCS_PATHS):
        return None
    if path == "/" or path.startswith("/static/"):
        return PAGE_CSP
    return API_CSP


class SecurityHeadersMiddleware:
    """Adds ``COMMON`` and the path's CSP to every response that does not set them itself."""

    def __init__(self, app: Callable[..., Any]) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        csp = csp_for(scope.get("path", ""))
        extra = list(COMMON) + ([(b"content-security-policy", csp.encode())] if csp else [])

        async def send_with_headers(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers += [(name, value) for name, value in extra if name not in present]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)
