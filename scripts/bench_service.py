"""Benchmark the REST service on loopback: throughput, latency percentiles, errors, memory.

Starts ``facedet serve`` (this checkout's, so its uvicorn options too) as a subprocess on a free
127.0.0.1 port (1 and 2 workers by default), POSTs the same 640x480 face JPEG as the raw body of
``/v1/detect`` from N client threads with keep-alive connections (concurrency 1, 8, 32), and
records requests/s, p50/p99 latency and the error count. On the 1-worker server it also
sends ``--memory-requests`` (default 10,000) more requests and reports the server's resident
memory before and after. Client and server share the machine, so on a small machine the
figures are a floor, not the server's capacity alone. Every loop is bounded; nothing leaves
loopback.

    python scripts/bench_service.py [--model FILE] [--out runs/bench_service]

Writes ``<out>/bench_service.json`` and ``<out>/bench_service.md``.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # this checkout's facedet, as the server subprocess gets (PYTHONPATH)

from facedet.testing import free_port  # noqa: E402

DEFAULT_IMAGE = REPO / "tests" / "data" / "service" / "faces_640x480.jpg"


def process_tree_rss_kib(pid: int) -> int:
    """Resident memory (KiB) of ``pid`` and all its descendants, from /proc (Linux)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    tree, frontier = {pid}, [pid]
    while frontier:
        parent = frontier.pop()
        for child, ppid in parents.items():
            if ppid == parent and child not in tree:
                tree.add(child)
                frontier.append(child)
    total = 0
    for member in tree:
        try:
            for line in Path(f"/proc/{member}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total


class Server:
    """uvicorn on a free loopback port, as a subprocess."""

    def __init__(self, model: Path, workers: int) -> None:
        self.port = free_port()
        env = {**os.environ, "FACEDET_MAX_QUEUE": "64", "PYTHONPATH": str(REPO)}
        cli = "import sys; from facedet.cli import main; sys.exit(main(sys.argv[1:]))"
        cmd = [
            sys.executable, "-c", cli, "serve", "--model", str(model),
            "--host", "127.0.0.1", "--port", str(self.port), "--workers", str(workers), "--log-level", "warning",
        ]  # fmt: skip
        self.log = tempfile.TemporaryFile()
        self.process = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        self.workers = workers
        try:
            self._wait_ready()
        except BaseException:
            self.stop()  # no server left behind when it never became ready
            raise

    def _wait_ready(self, timeout: float = 180.0) -> None:  # a loaded machine starts workers slowly
        deadline = time.monotonic() + timeout
        ready = 0
        while ready < 5 * self.workers:  # several answers, so every worker has started
            if self.process.poll() is not None:
                self.log.seek(0)
                raise RuntimeError(f"server exited: {self.log.read().decode(errors='replace')[-2000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError("server did not become ready")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                conn.request("GET", "/readyz")
                ready += conn.getresponse().status == 200
                conn.close()
            except OSError:
                time.sleep(0.1)

    def rss_kib(self) -> int:
        return process_tree_rss_kib(self.process.pid)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
        self.log.close()


def load(port: int, body: bytes, concurrency: int, total: int, path: str) -> dict[str, Any]:
    """Send ``total`` requests from ``concurrency`` threads; return throughput, latency and errors."""
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    remaining = [total]

    def worker() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        while True:
            with lock:
                if remaining[0] <= 0:
                    break
                remaining[0] -= 1
            t0 = time.perf_counter()
            try:
                conn.request("POST", path, body=body, headers={"Content-Type": "image/jpeg"})
                response = conn.getresponse()
                payload = response.read()
                ok = response.status == 200
                error = "" if ok else f"{response.status}: {payload[:120]!r}"
            except (OSError, http.client.HTTPException) as exc:
                ok, error = False, f"{type(exc).__name__}: {exc}"
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            elapsed = time.perf_counter() - t0
            with lock:
                if ok:
                    latencies.append(elapsed)
                else:
                    errors.append(error)
        conn.close()

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - start
    ms = sorted(x * 1000 for x in latencies) or [float("nan")]

    def pct(p: float) -> float:
        return round(ms[min(len(ms) - 1, int(round(p / 100 * (len(ms) - 1))))], 2)

    return {
        "concurrency": concurrency,
        "requests": total,
        "ok": len(latencies),
        "errors": len(errors),
        "error_samples": sorted(set(errors))[:5],
        "seconds": round(wall, 3),
        "rps": round(len(latencies) / wall, 2),
        "p50_ms": pct(50),
        "p99_ms": pct(99),
        "mean_ms": round(statistics.fmean(ms), 2),
    }


def markdown(result: dict[str, Any]) -> str:
    meta = result["meta"]
    lines = [
        "# facedet service benchmark",
        "",
        f"Model `{meta['model']}` ({meta['model_name']}, input {meta['input_size']} px); image "
        f"{meta['image']} ({meta['image_bytes']} bytes); {meta['cpus']} CPUs ({meta['machine']}); "
        f"client and server on the same machine over loopback; query `{meta['query']}`.",
        "",
        "| workers | concurrency | requests | errors | req/s | p50 ms | p99 ms |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for run in result["runs"]:
        lines.append(
            f"| {run['workers']} | {run['concurrency']} | {run['requests']} | {run['errors']} | {run['rps']} | "
            f"{run['p50_ms']} | {run['p99_ms']} |"
        )
    memory = result.get("memory")
    if memory:
        lines += [
            "",
            f"Memory (1 worker, concurrency {memory['concurrency']}): resident {memory['rss_before_mib']} MiB before, "
            f"{memory['rss_after_mib']} MiB after {memory['requests']} requests "
            f"({memory['rss_growth_mib']:+} MiB); {memory['errors']} errors; {memory['rps']} req/s.",
        ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="integer model (default: facedet.paths.default_model_path())")
    parser.add_argument("--random-model", action="store_true", help="use facedet.testing's random model")
    parser.add_argument("--image", type=Path, default=DEFAULT_IMAGE, help="JPEG to send (default: 640x480 faces)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--requests", type=int, default=400, help="requests per (workers, concurrency) cell")
    parser.add_argument("--memory-requests", type=int, default=10_000, help="requests for the memory check (0: skip)")
    parser.add_argument("--query", default="min_score=0.5", help="query string sent with each request")
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "bench_service")
    args = parser.parse_args(argv)

    tmp = tempfile.TemporaryDirectory()
    if args.random_model:
        from facedet.testing import write_random_model

        model = write_random_model(Path(tmp.name) / "random.fdet", seed=0)
    else:
        from facedet.paths import default_model_path

        model = args.model or default_model_path()
    from facedet.engine import IntEngine

    info = IntEngine.load(model).info
    body = args.image.read_bytes()
    path = f"/v1/detect?{args.query}"
    result: dict[str, Any] = {
        "meta": {
            "model": str(model.name),
            "model_name": info.get("name"),
            "input_size": info.get("input_size"),
            "image": args.image.name,
            "image_bytes": len(body),
            "query": args.query,
            "cpus": os.cpu_count(),
            "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
            "python": platform.python_version(),
        },
        "runs": [],
    }
    for workers in args.workers:
        server = Server(model, workers)
        try:
            load(server.port, body, 4, 40, path)  # warm-up: every worker, every thread pool
            for concurrency in args.concurrency:
                run = load(server.port, body, concurrency, args.requests, path)
                run["workers"] = workers
                result["runs"].append(run)
                print(json.dumps(run), flush=True)
            if workers == 1 and args.memory_requests > 0:
                before = server.rss_kib()
                run = load(server.port, body, 8, args.memory_requests, path)
                after = server.rss_kib()
                result["memory"] = {
                    "concurrency": 8,
                    "requests": args.memory_requests,
                    "errors": run["errors"],
                    "rps": run["rps"],
                    "rss_before_mib": round(before / 1024, 1),
                    "rss_after_mib": round(after / 1024, 1),
                    "rss_growth_mib": round((after - before) / 1024, 1),
                }
                print(json.dumps(result["memory"]), flush=True)
        finally:
            server.stop()
    tmp.cleanup()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench_service.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / "bench_service.md").write_text(markdown(result))
    print(markdown(result))
    errors = sum(run["errors"] for run in result["runs"]) + result.get("memory", {}).get("errors", 0)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
