"""``facedet serve --workers N``: Nagle off on the workers' connections, /metrics totals over all workers."""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import uvicorn
from uvicorn.server import ServerState

from facedet.testing import free_port, write_random_model
from service.metrics import Figures
from service.server import GuardedH11Protocol

REPO = Path(__file__).resolve().parent.parent
FACES = REPO / "tests" / "data" / "service" / "faces_640x480.jpg"


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


def _get(port: int, path: str, body: bytes | None = None) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)  # a new connection: any worker may answer
    conn.request("POST" if body is not None else "GET", path, body=body)
    response = conn.getresponse()
    text = response.read().decode(errors="replace")
    conn.close()
    return response.status, text


def _sample(exposition: str, name: str) -> float:
    """The value of the sample ``name`` (with its labels) in a /metrics text."""
    values = [float(line.rsplit(" ", 1)[1]) for line in exposition.splitlines() if line.rsplit(" ", 1)[0] == name]
    assert len(values) == 1, f"{name}: {values}"
    return values[0]


def _detections_by_worker(metrics_dir: Path) -> dict[str, int]:
    """Answered detections in each worker's published figures (service.metrics.WorkerFiles)."""
    found = {}
    for path in metrics_dir.glob("worker-*.json"):
        figures = Figures.from_json(json.loads(path.read_text()))
        found[path.name] = figures.requests.get(("/v1/detect", "POST", 200), 0)
    return found


def _wait_for(condition: Callable[[], bool], what: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 180  # a loaded 2-core machine starts two workers slowly
    while not condition():
        assert process.poll() is None, log.read_text()
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def _ready(port: int) -> bool:
    try:
        return _get(port, "/readyz")[0] == 200
    except OSError:
        return False


def test_metrics_count_the_requests_of_every_worker(tmp_path: Path) -> None:
    model = write_random_model(tmp_path / "random.fdet", seed=0)
    temp_root = tmp_path / "tmp"  # serve's TMPDIR: where its private metrics directory is made
    temp_root.mkdir()
    port, log = free_port(), tmp_path / "server.log"
    env = {**os.environ, "PYTHONPATH": str(REPO), "TMPDIR": str(temp_root)}
    code = "import sys; from facedet.cli import main; sys.exit(main(sys.argv[1:]))"
    args = ["serve", "--model", str(model), "--port", str(port), "--workers", "2", "--log-level", "warning"]
    with log.open("w") as out:
        process = subprocess.Popen([sys.executable, "-c", code, *args], cwd=REPO, env=env, stdout=out, stderr=out)
    try:
        _wait_for(lambda: _ready(port), "readiness", process, log)
        workers = lambda: _sample(_get(port, "/metrics")[1], "facedet_workers")  # noqa: E731
        _wait_for(lambda: workers() == 2, "both workers to publish their metrics", process, log)
        (metrics_dir,) = temp_root.glob("facedet-metrics-*")

        # Fresh connections until both workers have answered detections (the kernel picks the worker).
        sent = 0
        while sent < 10 or min(_detections_by_worker(metrics_dir).values()) == 0:
            assert sent < 400, f"one worker answered every request: {_detections_by_worker(metrics_dir)}"
            status, text = _get(port, "/v1/detect", FACES.read_bytes())
            assert status == 200, text
            sent += 1
        # A worker publishes just after its response has gone out: wait until both files are complete.
        _wait_for(lambda: sum(_detections_by_worker(metrics_dir).values()) == sent, "published counts", process, log)

        for _ in range(8):  # whichever worker answers the scrape, it reports both workers' requests
            text = _get(port, "/metrics")[1]
            assert _sample(text, 'facedet_http_requests_total{route="/v1/detect",method="POST",status="200"}') == sent
            assert _sample(text, "facedet_images_total") == sent
            assert (
                _sample(text, 'facedet_http_request_duration_seconds_count{route="/v1/detect",method="POST"}') == sent
            )
            assert _sample(text, "facedet_model_loaded") == 2
            assert _sample(text, "facedet_requests_in_progress") == 0
    finally:
        process.terminate()
        process.wait(30)
    assert process.returncode == 0, log.read_text()
    assert not list(temp_root.iterdir()), "serve left its metrics directory behind"
