"""Memory under load (issue 14, item 5): detections run on a few dedicated threads with glibc's
malloc arenas capped, so RSS stops growing after warm-up. The RSS check runs in a fresh process
(other tests' allocations would blur it). Measured on 2 cores, after 16 warm-up requests from
16 client threads, 96 more grew RSS by 72-89 MB on the code before the fix (41530a8: anyio's
shared threads, glibc defaults) and by -0.05 to 1.7 MB with it; the bound is the issue's own
goal, 10 MB. (A warm-up on one thread left the second detection thread's first allocations inside
the measurement: 5-10 MB, so the check failed now and then on a clean machine.)"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from service.allocator import MMAP_THRESHOLD_BYTES, TRIM_THRESHOLD_BYTES, tune_malloc

REPO = Path(__file__).resolve().parent.parent

# Runs in a child process: 16 warm-up requests, then 96 more, from 16 client threads.
LOAD = """
import json, sys, threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from fastapi.testclient import TestClient
from service.app import create_app
from service.settings import Settings

def rss_mb():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024

faces = Path(sys.argv[1]).read_bytes()
with TestClient(create_app(Settings(model_path=Path(sys.argv[2]), max_concurrency=2))) as client:
    post = lambda _: client.post("/v1/detect", content=faces).status_code
    with ThreadPoolExecutor(16) as pool:
        # Warm-up under the same concurrency, so that both detection threads have run (and their
        # malloc arena exists) before the measurement starts.
        warm = list(pool.map(post, range(16)))
        before = rss_mb()
        statuses = warm + list(pool.map(post, range(96)))
    after = rss_mb()
    detect_threads = sum(t.name.startswith("facedet-detect") for t in threading.enumerate())
print(json.dumps({"statuses": sorted(set(statuses)), "growth_mb": after - before, "detect_threads": detect_threads}))
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads RSS from /proc")
def test_rss_stays_flat_after_warm_up_under_concurrent_requests() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}  # the service's own settings
    env["PYTHONPATH"] = str(REPO)
    faces = REPO / "tests" / "data" / "service" / "faces_640x480.jpg"
    model = REPO / "weights" / "default.fdet"
    done = subprocess.run(
        [sys.executable, "-c", LOAD, str(faces), str(model)], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["statuses"] == [200]
    assert result["detect_threads"] == 2, result  # detections ran on the dedicated pool only
    assert result["growth_mb"] < 10, result


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_malloc_tuning_is_applied_on_glibc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)
    thresholds = {"M_MMAP_THRESHOLD": MMAP_THRESHOLD_BYTES, "M_TRIM_THRESHOLD": TRIM_THRESHOLD_BYTES}
    assert tune_malloc() == {"M_ARENA_MAX": 2, **thresholds}
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")  # an explicit environment setting wins
    assert tune_malloc() == thresholds
