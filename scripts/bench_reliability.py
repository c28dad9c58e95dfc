"""Reliability benchmark of the real server (issue 14): bad inputs, slow clients, memory under load.

Starts ``facedet serve`` on 127.0.0.1 (loopback only) with the given model and runs, in order:

1. the bad-input list: every case's status, whether the answer is JSON, whether /healthz still
   answers, and the server's RSS;
2. the slow-body attack: ``--slow-clients`` connections send headers and 10 body bytes, then
   stall, for at most ``--attack-s`` seconds (20), while real detections are sent every 0.25 s;
3. the slow-header attack: ``--slow-clients`` connections send an incomplete request head; how
   many the server has closed within ``--attack-s`` seconds;
4. two rounds of ``--requests`` detections (640x480 JPEG) at ``--concurrency``, RSS before/after each;
5. tracebacks and ERROR lines in the server log;
6. kill-and-resume of training (``scripts/reliability_train.py``; ``--skip-train`` leaves it out):
   ``facedet train`` on a tiny generated WIDER tree is SIGKILLed right after a mid-epoch
   checkpoint, resumed with ``--resume``, and its final ``last.pt`` and ``log.jsonl`` compared
   with an uninterrupted run's. Needs the [train] extra; a minute or less.

Usage: python scripts/bench_reliability.py [--requests 10000] [--concurrency 32] [--model weights/default.fdet]
                                           [--skip-server] [--skip-train] [--train-epochs 3]
Prints one JSON object: ``rss_start_mb``, ``bad_inputs``, ``slow_body``, ``slow_header``, ``load`` and
``log`` (phases 1-5, absent with ``--skip-server``) and ``train_kill_resume`` (phase 6:
``killed_at_step``, the last step the killed run logged; ``resumed_from_step``, the step of the
checkpoint it resumed from; ``identical``, every checkpoint tensor and value and every log record
equal; ``max_abs_diff`` of the ``model`` (EMA), ``train_model`` (raw) and optimizer tensors;
``checkpoint_mismatches``; ``log``; see ``reliability_train``'s docstring). Run it under ``nice``
on a shared machine.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # this checkout's facedet, as the server subprocess gets (PYTHONPATH)

from reliability_train import FACEDET_CLI, kill_and_resume  # noqa: E402  (scripts/, beside this file)

from facedet.testing import free_port  # noqa: E402

FACES = (REPO / "tests" / "data" / "service" / "faces_640x480.jpg").read_bytes()
HOST = "127.0.0.1"


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def request(port: int, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None):
    conn = http.client.HTTPConnection(HOST, port, timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def multipart(field: str, parts: list[bytes]) -> tuple[bytes, dict[str, str]]:
    boundary = "facedetbench"
    chunks = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="f{i}.jpg"\r\n'
        f"Content-Type: image/jpeg\r\n\r\n".encode()
        + part
        + b"\r\n"
        for i, part in enumerate(parts)
    ]
    body = b"".join(chunks) + f"--{boundary}--\r\n".encode()
    return body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}


def bad_inputs() -> list[tuple[str, str, bytes, dict[str, str]]]:
    """(name, path, body, headers) of hostile or malformed requests."""
    damaged = bytearray(FACES)
    damaged[len(FACES) // 2 : len(FACES) // 2 + 4] = b"\xff\x17\x00\x42"
    png_bomb = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + (60000).to_bytes(4, "big") * 2 + b"\x08\x02\x00\x00\x00" * 2
    many, many_headers = multipart("files", [b"x"] * 1000)
    wrong, wrong_headers = multipart("image", [FACES])
    return [
        ("empty body", "/v1/detect", b"", {}),
        ("text body", "/v1/detect", b"hello, not an image", {}),
        ("truncated jpeg", "/v1/detect", FACES[: len(FACES) // 2], {}),
        ("damaged jpeg scan", "/v1/detect", bytes(damaged), {}),
        ("gif", "/v1/detect", b"GIF89a" + b"\0" * 64, {}),
        ("png header bomb", "/v1/detect", png_bomb + b"IEND\xaeB`\x82", {}),
        ("svg", "/v1/detect", b"<svg xmlns='http://www.w3.org/2000/svg'/>", {}),
        ("min_score nan", "/v1/detect?min_score=nan", FACES, {}),
        ("min_score 2", "/v1/detect?min_score=2", FACES, {}),
        ("unknown query", "/v1/detect?minscore=0.2", FACES, {}),
        ("removed max_side", "/v1/detect?max_side=1", FACES, {}),
        ("declared 1 GB", "/v1/detect", FACES, {"Content-Length": "1000000000"}),
        ("batch of 1000", "/v1/detect/batch", many, many_headers),
        ("batch not multipart", "/v1/detect/batch", FACES, {}),
        ("multipart wrong field", "/v1/detect", wrong, wrong_headers),
        ("broken multipart", "/v1/detect", b"--x\r\n\r\n", {"Content-Type": "multipart/form-data; boundary=x"}),
        ("60 KB header (under the 64 KiB limit)", "/v1/detect", FACES, {"X-Big": "a" * 60_000}),
        ("unknown route", "/v2/nothing", b"", {}),
    ]


def run_bad_inputs(port: int, pid: int) -> list[dict[str, Any]]:
    rows = []
    for name, path, body, headers in bad_inputs():
        try:
            status, data = request(port, "POST", path, body, headers)
            try:
                detail = json.loads(data).get("detail", "")
                is_json = True
            except (ValueError, AttributeError):
                detail, is_json = data[:80].decode(errors="replace"), False
        except OSError as exc:
            status, detail, is_json = 0, f"{type(exc).__name__}: {exc}", False
        alive = request(port, "GET", "/healthz")[0] == 200
        rows.append(
            {"case": name, "status": status, "json": is_json, "alive": alive, "rss_mb": round(rss_mb(pid), 1)}
            | {"detail": str(detail)[:100]}
        )
    return rows


def slow_body_attack(port: int, clients: int, seconds: float) -> dict[str, Any]:
    head = b"POST /v1/detect HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n" + b"\xff\xd8\xff" + b"\0" * 7
    socks = []
    for _ in range(clients):
        sock = socket.create_connection((HOST, port), timeout=seconds + 5)
        sock.sendall(head)
        socks.append(sock)
    ok = total = ready = 0
    deadline = time.monotonic() + seconds
    answered: set[int] = set()
    while time.monotonic() < deadline and len(answered) < clients:
        total += 1
        ok += request(port, "POST", "/v1/detect", FACES)[0] == 200
        ready += request(port, "GET", "/readyz")[0] == 200
        for index, sock in enumerate(socks):
            sock.setblocking(False)
            try:
                if sock.recv(1, socket.MSG_PEEK):
                    answered.add(index)
            except BlockingIOError:
                pass
            except OSError:
                answered.add(index)
        time.sleep(0.25)
    for sock in socks:
        sock.close()
    return {
        "clients": clients,
        "detections_ok": ok,
        "detections_sent": total,
        "readyz_ok": ready,
        "stalled_clients_answered": len(answered),
    }


def slow_header_attack(port: int, clients: int, seconds: float) -> dict[str, Any]:
    socks = [socket.create_connection((HOST, port), timeout=seconds + 5) for _ in range(clients)]
    for sock in socks:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
    start = time.monotonic()
    closed_after: list[float] = []
    for sock in socks:
        sock.settimeout(max(0.1, seconds - (time.monotonic() - start)))
        try:
            if sock.recv(100) == b"":
                closed_after.append(time.monotonic() - start)
        except OSError:
            pass
        sock.close()
    return {"clients": clients, "closed": len(closed_after), "last_closed_s": round(max(closed_after, default=0), 2)}


def load(port: int, pid: int, count: int, concurrency: int) -> dict[str, Any]:
    before = rss_mb(pid)
    errors: list[int] = []
    lock = threading.Lock()

    def worker(n: int) -> None:
        conn = http.client.HTTPConnection(HOST, port, timeout=60)
        for _ in range(n):
            conn.request("POST", "/v1/detect", body=FACES)
            response = conn.getresponse()
            response.read()
            if response.status != 200:
                with lock:
                    errors.append(response.status)
        conn.close()

    start = time.perf_counter()
    shares = [count // concurrency + (i < count % concurrency) for i in range(concurrency)]
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(worker, shares))
    seconds = time.perf_counter() - start
    after = rss_mb(pid)
    return {
        "requests": count,
        "errors": len(errors),
        "statuses": sorted(set(errors)),
        "seconds": round(seconds, 1),
        "rps": round(count / seconds, 1),
        "rss_before_mb": round(before, 1),
        "rss_after_mb": round(after, 1),
        "rss_growth_mb": round(after - before, 1),
    }


def server_phases(args: argparse.Namespace) -> dict[str, Any] | None:
    """Phases 1-5 against a ``facedet serve`` subprocess; None when the server did not start."""
    port = free_port(HOST)
    log = Path(tempfile.mkdtemp()) / "server.log"
    cmd = [*FACEDET_CLI, "serve", "--host", HOST, "--port", str(port), "--model", args.model]
    cmd += ["--body-timeout", str(args.body_timeout), "--header-timeout", "5", "--log-level", "warning"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with log.open("w") as out:
        server = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=out, stderr=out)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if request(port, "GET", "/readyz")[0] == 200:
                    break
            except OSError:
                time.sleep(0.2)
            if server.poll() is not None or time.monotonic() > deadline:
                print(log.read_text(), file=sys.stderr)
                return None
        report: dict[str, Any] = {"rss_start_mb": round(rss_mb(server.pid), 1)}
        print("bad inputs ...", file=sys.stderr, flush=True)
        report["bad_inputs"] = run_bad_inputs(port, server.pid)
        print("slow-body attack ...", file=sys.stderr, flush=True)
        report["slow_body"] = slow_body_attack(port, args.slow_clients, args.attack_s)
        print("slow-header attack ...", file=sys.stderr, flush=True)
        report["slow_header"] = slow_header_attack(port, args.slow_clients, args.attack_s)
        report["load"] = []
        for round_ in (1, 2):
            print(f"load round {round_} ...", file=sys.stderr, flush=True)
            report["load"].append(load(port, server.pid, args.requests, args.concurrency))
    finally:
        server.terminate()
        server.wait(15)
    text = log.read_text()
    report["log"] = {"tracebacks": text.count("Traceback"), "error_lines": text.count("ERROR")}
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(REPO / "weights" / "default.fdet"))
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--slow-clients", type=int, default=40)
    parser.add_argument("--attack-s", type=float, default=20.0, help="bound of each slow-client attack (s)")
    parser.add_argument("--body-timeout", type=float, default=10.0, help="server's --body-timeout (s)")
    parser.add_argument("--skip-server", action="store_true", help="leave out phases 1-5 (the server)")
    parser.add_argument("--skip-train", action="store_true", help="leave out phase 6 (training kill-and-resume)")
    parser.add_argument("--train-epochs", type=int, default=3, help="epochs of the phase-6 runs (2 steps each)")
    args = parser.parse_args()
    report: dict[str, Any] = {}
    if not args.skip_server:
        served = server_phases(args)
        if served is None:
            return 1
        report |= served
    if not args.skip_train:
        print("training kill-and-resume ...", file=sys.stderr, flush=True)
        report["train_kill_resume"] = kill_and_resume(args.train_epochs)
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
