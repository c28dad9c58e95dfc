"""Per-app state shared by the routes: settings, the loaded engine, metrics and the concurrency gate."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

import anyio

from facedet.detections import Detector
from service.metrics import Gauges, Metrics
from service.settings import Settings

T = TypeVar("T")


class Engine(Detector, Protocol):
    """What the service needs from ``facedet.engine.IntEngine``: a ``Detector`` (whose ``detect`` is
    thread-safe) that also describes its model file in ``info`` (served by /v1/model)."""

    @property
    def info(self) -> dict[str, Any]: ...


class Busy(Exception):
    """The service is saturated: every worker is busy and the wait queue is full (-> 503)."""


class Gate:
    """Bounds the work in progress.

    At most ``running`` detections run at once, on a dedicated pool of ``running`` threads; at
    most ``running + waiting`` requests are admitted at all. The next one is refused at once
    with ``Busy`` (a 503) instead of queueing without bound, so memory stays bounded and the event
    loop stays free to answer /healthz. ``enter``/``leave`` run on the event loop thread only, so
    the counter needs no lock.

    Why a dedicated pool (and not anyio's shared one, up to 40 threads): every thread that
    allocates gets a glibc malloc arena of its own, and each arena grows to the peak working set
    of a detection; a few fixed threads keep that memory in a few arenas (see service.allocator).
    """

    def __init__(self, running: int, waiting: int) -> None:
        self.executor = ThreadPoolExecutor(running, thread_name_prefix="facedet-detect")
        self.capacity = running + waiting
        self.admitted = 0

    def enter(self) -> None:
        if self.admitted >= self.capacity:
            raise Busy(f"server busy: {self.admitted} requests in progress (limit {self.capacity}); retry in a moment")
        self.admitted += 1

    def leave(self) -> None:
        self.admitted -= 1

    async def run(self, call: Callable[[], T]) -> T:
        """Run ``call`` on a detection thread (queued while all are busy). Shielded from
        cancellation: an admitted request holds its slot until its detection has finished."""
        with anyio.CancelScope(shield=True):  # a shielded scope never swallows: the result or the error
            result = await asyncio.wrap_future(self.executor.submit(call))
        return result

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)


class PixelBudget:
    """Bounds the decoded pixels held at once by all detections of the process.

    Each detection holds its image's ``width * height`` (read from the header, before decoding)
    from decode to the end of detection; a thread whose image does not fit waits until others
    finish. With ``total`` pixels, decoded images and their resized copies stay within about
    ``3 * total`` bytes plus the engine's fixed-size buffers, however large the admitted uploads.
    Used from worker threads, hence the condition variable.
    """

    def __init__(self, total: int) -> None:
        self.total = total
        self.used = 0
        self._free = threading.Condition()

    @contextmanager
    def hold(self, pixels: int) -> Iterator[None]:
        pixels = min(pixels, self.total)  # an image of max_pixels always fits an empty budget
        with self._free:
            self._free.wait_for(lambda: self.used + pixels <= self.total)
            self.used += pixels
        try:
            yield
        finally:
            with self._free:
                self.used -= pixels
                self._free.notify_all()


@dataclass
class ServiceState:
    """Everything a request handler needs; stored as ``app.state.service``."""

    settings: Settings
    metrics: Metrics
    gate: Gate
    pixels: PixelBudget
    engine: Engine | None = None
    model_path: Path | None = None
    load_error: str | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def gauges(self) -> Gauges:
        """This process's gauges for /metrics (summed over the running workers: service.metrics)."""
        return {
            "facedet_requests_in_progress": (
                "Detection requests admitted and not finished.",
                float(self.gate.admitted),
            ),
            "facedet_model_loaded": (
                "Worker processes with the model loaded (1 or 0 with one worker).",
                float(self.engine is not None),
            ),
        }
