"""``facedet serve --workers N``: Nagle off on the workers' connections, /metrics totals over all workers."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import uvicorn
from uvicorn.server import ServerState

from service.server import GuardedH11Protocol


async def _silent_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    raise AssertionError("no request is sent")


async def _nodelay_of_accepted_connection(config: uvicorn.Config) -> int:
    """Accept one connection on a listener bound the way ``uvicorn --workers N`` binds it; its TCP_NODELAY."""
    listener = config.bind_socket()  # the supervisor's socket, handed to each worker
    protocols: list[GuardedH11Protocol] = []

    def protocol() -> GuardedH11Protocol:
        protocols.append(GuardedH11Protocol(config=config, server_state=ServerState(), app_state={}))
        return protocols[-1]

    server = await asyncio.get_running_loop().create_server(protocol, sock=listener)
    _, writer = await asyncio.open_connection(*listener.getsockname()[:2])
    try:
        for _ in range(500):  # until the server side has run connection_made
            if protocols and protocols[0].transport is not None:
                break
            await asyncio.sleep(0.01)
        accepted = protocols[0].transport.get_extra_info("socket")
        return int(accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
    finally:
        writer.close()
        server.close()
        await server.wait_closed()


def test_connections_of_multi_worker_listener_have_nagle_off() -> None:
    # uvicorn binds the --workers N listener with proto 0, so asyncio does not set TCP_NODELAY on
    # the accepted sockets (uvicorn issue #3149): a response's body (a second write after its head)
    # then waited for the client's delayed ACK, ~40 ms per keep-alive request.
    config = uvicorn.Config(_silent_app, host="127.0.0.1", port=0, http=GuardedH11Protocol, log_config=None)
    config.load()
    assert asyncio.run(_nodelay_of_accepted_connection(config)) == 1
