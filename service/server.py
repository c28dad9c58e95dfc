"""How ``facedet serve`` runs uvicorn: timeouts, connection limit, no banner.

uvicorn's h11 protocol closes idle keep-alive connections (``timeout_keep_alive``) but has no
timer for a connection whose request headers never complete: 50 such connections stayed open
indefinitely. ``GuardedH11Protocol`` adds one: ``header_timeout_s`` after the connection opens
(or after the previous response, on a kept-alive connection), a connection still waiting for a
complete request head is closed. Slow *bodies* are timed by the app (``service.uploads``).

It also turns Nagle's algorithm off (``TCP_NODELAY``) on every accepted TCP connection. asyncio
does that by itself only when the listening socket reports ``proto == IPPROTO_TCP``; with
``--workers N`` uvicorn binds the listener itself with ``proto`` 0 (uvicorn issue #3149), so the
workers' connections kept Nagle on: h11 writes a response's head and body separately, the body
waited for the client's delayed ACK of the head, and each keep-alive request took ~40 ms more.
Measured (scripts/bench_service.py, IFQ-Tinier-YOLO, concurrency 1, 2 cores): 2 workers answered
18.6 req/s, p50 52 ms before, 101 req/s, p50 9.3 ms with Nagle off (1 worker: 104-111 req/s, 9 ms).
"""

from __future__ import annotations

import asyncio
import socket
from functools import cache
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

from service.settings import Settings


@cache
def _header_timeout() -> float:
    # Read once per worker process; facedet serve passes its flags as FACEDET_* variables.
    return Settings().header_timeout_s


def _disable_nagle(transport: asyncio.BaseTransport) -> None:
    """``TCP_NODELAY`` on the connection's socket (a TCP one; a Unix socket has no Nagle)."""
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol plus a deadline for complete request headers, and no Nagle delay."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timer: asyncio.TimerHandle | None = None

    def _arm_header_timer(self, seconds: float) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
        self._header_timer = self.loop.call_later(seconds, self._headers_overdue)

    def _headers_overdue(self) -> None:
        self._header_timer = None
        waiting_for_head = self.cycle is None or self.cycle.response_complete
        if waiting_for_head and not self.transport.is_closing():
            self.logger.info("closing a connection that sent no complete request head in %g s", _header_timeout())
            self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        _disable_nagle(transport)
        super().connection_made(transport)
        self._arm_header_timer(_header_timeout())

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():  # the next request's head has the same deadline
            self._arm_header_timer(self.timeout_keep_alive + _header_timeout())

    def connection_lost(self, exc: Exception | None) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None
        super().connection_lost(exc)


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for ``uvicorn.run`` that harden the server for untrusted clients."""
    return {
        "http": GuardedH11Protocol,
        "timeout_keep_alive": settings.keep_alive_s,
        "limit_concurrency": settings.max_connections,
        "server_header": False,  # no "server: uvicorn" banner
        "h11_max_incomplete_event_size": 64 * 1024,  # request line + headers
        "proxy_headers": False,
    }
