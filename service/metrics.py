"""Prometheus metrics written by hand (text exposition format 0.0.4), no extra dependency.

Counters live in one process: with several uvicorn workers each worker has its own, and a
scrape sees whichever worker answered (run one worker per container to scrape each cleanly).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

LATENCY_BUCKETS: tuple[float, ...] = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Histogram:
    """A cumulative-bucket histogram (seconds)."""

    def __init__(self, buckets: tuple[float, ...] = LATENCY_BUCKETS) -> None:
        self.buckets = buckets
        self.counts = [0] * (len(buckets) + 1)  # last = +Inf
        self.total = 0.0
        self.n = 0

    def observe(self, value: float) -> None:
        for i, edge in enumerate(self.buckets):
            if value <= edge:
                self.counts[i] += 1
                break
        else:
            self.counts[-1] += 1
        self.total += value
        self.n += 1

    def lines(self, name: str, labels: str) -> list[str]:
        sep = "," if labels else ""
        out, running = [], 0
        for edge, count in zip((*self.buckets, float("inf")), self.counts, strict=True):
            running += count
            le = "+Inf" if edge == float("inf") else repr(edge)
            out.append(f'{name}_bucket{{{labels}{sep}le="{le}"}} {running}')
        suffix = f"{{{labels}}}" if labels else ""
        out.append(f"{name}_sum{suffix} {self.total:.6f}")
        out.append(f"{name}_count{suffix} {self.n}")
        return out


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class Metrics:
    """Request counts by route/method/status, latency histograms, detection figures. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: dict[tuple[str, str, int], int] = {}
        self.latency: dict[tuple[str, str], Histogram] = {}
        self.inference = Histogram()
        self.faces_total = 0
        self.images_total = 0
        self.rejected_busy = 0
        self.client_disconnects = 0  # the client went away mid-request: its fault, not a 5xx
        self.body_timeouts = 0  # the body did not arrive within body_timeout_s (408)
        self.in_flight = 0
        self.started = time.time()

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        with self._lock:
            key = (route, method, status)
            self.requests[key] = self.requests.get(key, 0) + 1
            self.latency.setdefault((route, method), Histogram()).observe(seconds)

    def observe_detection(self, seconds: float, faces: int) -> None:
        with self._lock:
            self.inference.observe(seconds)
            self.images_total += 1
            self.faces_total += faces

    def count_busy(self) -> None:
        with self._lock:
            self.rejected_busy += 1

    def count_disconnect(self) -> None:
        with self._lock:
            self.client_disconnects += 1

    def count_body_timeout(self) -> None:
        with self._lock:
            self.body_timeouts += 1

    def render(self, gauges: dict[str, tuple[str, float]] | None = None) -> str:
        """The exposition text; ``gauges`` maps extra gauge names to (help, value)."""
        with self._lock:
            lines = [
                "# HELP facedet_http_requests_total HTTP requests by route template, method and status code.",
                "# TYPE facedet_http_requests_total counter",
            ]
            for (route, method, status), count in sorted(self.requests.items()):
                labels = f'route="{_escape(route)}",method="{method}",status="{status}"'
                lines.append(f"facedet_http_requests_total{{{labels}}} {count}")
            lines += [
                "# HELP facedet_http_request_duration_seconds Time from request start to response end.",
                "# TYPE facedet_http_request_duration_seconds histogram",
            ]
            for (route, method), hist in sorted(self.latency.items()):
                lines += hist.lines(
                    "facedet_http_request_duration_seconds", f'route="{_escape(route)}",method="{method}"'
                )
            lines += [
                "# HELP facedet_inference_seconds Time spent in the detector per image.",
                "# TYPE facedet_inference_seconds histogram",
                *self.inference.lines("facedet_inference_seconds", ""),
                "# HELP facedet_images_total Images run through the detector.",
                "# TYPE facedet_images_total counter",
                f"facedet_images_total {self.images_total}",
                "# HELP facedet_faces_total Faces returned.",
                "# TYPE facedet_faces_total counter",
                f"facedet_faces_total {self.faces_total}",
                "# HELP facedet_rejected_busy_total Requests refused with 503 because the service was saturated.",
                "# TYPE facedet_rejected_busy_total counter",
                f"facedet_rejected_busy_total {self.rejected_busy}",
                "# HELP facedet_client_disconnects_total Requests whose client disconnected before the body was read.",
                "# TYPE facedet_client_disconnects_total counter",
                f"facedet_client_disconnects_total {self.client_disconnects}",
                "# HELP facedet_body_timeouts_total Requests refused with 408: the body arrived too slowly.",
                "# TYPE facedet_body_timeouts_total counter",
                f"facedet_body_timeouts_total {self.body_timeouts}",
                "# HELP facedet_process_start_time_seconds Start time of the process since the Unix epoch.",
                "# TYPE facedet_process_start_time_seconds gauge",
                f"facedet_process_start_time_seconds {self.started:.3f}",
            ]
            for name, (help_text, value) in (gauges or {}).items():
                lines += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge", f"{name} {value:g}"]
        return "\n".join(lines) + "\n"


class MetricsMiddleware:
    """Pure ASGI middleware: times every HTTP request and counts it by route template and status.

    The route label is the matched path template (``/v1/detect``), never the raw path, so
    scanning for random URLs cannot grow the label set; unmatched paths count as ``<unmatched>``.
    """

    def __init__(self, app: Callable[..., Any], metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_wrapper(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "<unmatched>"
            self.metrics.observe_request(template, scope.get("method", "GET"), status, time.perf_counter() - start)
