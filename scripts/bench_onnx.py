"""onnxruntime vs the native and numpy integer engines, per 640x480 frame, one thread, one process.

    PYTHONPATH=. python scripts/bench_onnx.py --model dupnet-tinier-yolo --model ifq-tinier-yolo --repeats 40

Each model is exported to ONNX in a temporary folder (``facedet.export_onnx``), then every detector
runs in turn, round-robin, one ``detect`` call each per round, so that background load hits them
alike and their ratios stay comparable on a busy machine. Reported per detector: median and 90th
percentile wall time of the whole ``detect`` call (letterbox, network, decode, NMS), the median
CPU time of the process for that call (``time.process_time``: what the call cost, less what other
processes took from it), and the median wall and CPU time of the network alone (``raw`` on a
letterboxed input). On a loaded machine the CPU times are the comparable figures. Needs the [onnx]
extra and, for the native rows, the built extension.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OPENCV_FOR_THREADS_NUM"):
    os.environ[_var] = "1"  # one thread everywhere, before numpy and OpenCV start their pools

import argparse  # noqa: E402
import json  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from facedet.boxes import letterbox  # noqa: E402
from facedet.engine import IntEngine  # noqa: E402
from facedet.export_onnx import export_onnx  # noqa: E402
from facedet.onnx_detector import OnnxDetector  # noqa: E402
from facedet.paths import resolve_model  # noqa: E402

PHOTO = Path(__file__).resolve().parent.parent / "tests" / "data" / "service" / "faces_640x480.jpg"


def detectors(models: list[str], folder: Path, engines: list[str]) -> list[tuple[str, str, Any]]:
    found = []
    for model in models:
        for engine in engines:
            found.append((model, engine, IntEngine.load(resolve_model(model), engine=engine)))
        onnx_file = export_onnx(model, folder / f"{Path(model).stem}.onnx").path
        found.append((model, "onnxruntime", OnnxDetector(onnx_file, threads=1)))
    return found


def measure(found: list[tuple[str, str, Any]], frame: np.ndarray, repeats: int) -> list[dict[str, Any]]:
    wall: dict[int, list[float]] = {i: [] for i in range(len(found))}
    cpu: dict[int, list[float]] = {i: [] for i in range(len(found))}
    net: dict[int, list[float]] = {i: [] for i in range(len(found))}
    net_cpu: dict[int, list[float]] = {i: [] for i in range(len(found))}
    boxed = {i: letterbox(frame, d.config.img_size, d.config.letterbox_value)[0] for i, (_, _, d) in enumerate(found)}
    for _, _, detector in found:
        detector.detect(frame)  # warm-up
    for _ in range(repeats):
        for i, (_, _, detector) in enumerate(found):
            w0, c0 = time.perf_counter(), time.process_time()
            detector.detect(frame)
            w1, c1 = time.perf_counter(), time.process_time()
            detector.raw(boxed[i])
            w2, c2 = time.perf_counter(), time.process_time()
            wall[i].append((w1 - w0) * 1e3)
            cpu[i].append((c1 - c0) * 1e3)
            net[i].append((w2 - w1) * 1e3)
            net_cpu[i].append((c2 - c1) * 1e3)
    rows = []
    for i, (model, engine, detector) in enumerate(found):
        rows.append(
            {
                "detector": detector.name,
                "model": model,
                "engine": engine,
                "threads": 1,
                "frame": f"{frame.shape[1]}x{frame.shape[0]}",
                "img_size": detector.config.img_size,
                "median_ms": round(float(np.median(wall[i])), 2),
                "p90_ms": round(float(np.percentile(wall[i], 90)), 2),
                "cpu_median_ms": round(float(np.median(cpu[i])), 2),
                "network_median_ms": round(float(np.median(net[i])), 2),
                "network_cpu_median_ms": round(float(np.median(net_cpu[i])), 2),
                "faces": len(detector.detect(frame)),
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", default=[], help="model name or .fdet (repeatable)")
    parser.add_argument("--engine", default="native,numpy", help="integer engines to compare (default native,numpy)")
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    frame = cv2.imread(str(PHOTO), cv2.IMREAD_COLOR)
    with tempfile.TemporaryDirectory(prefix="facedet-onnx-bench-") as tmp:
        found = detectors(args.model or ["dupnet-tinier-yolo"], Path(tmp), args.engine.split(","))
        rows = measure(found, frame, args.repeats)
    print(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
