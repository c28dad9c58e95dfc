"""Time the float model, the fake-quant model, the integer engine and a peer on the same frames.

Each (detector, thread count) runs in its own subprocess, so that thread limits apply from the
start (OMP/OpenBLAS/MKL environment variables before numpy loads, ``cv2.setNumThreads``,
``torch.set_num_threads``) and the peak resident memory (``getrusage`` maxrss) is that
detector's alone. Frames are the given images (--frames DIR) or synthetic 640x480 and FDDB-sized
450x340 frames; every detector sees the same ones. Times are per ``detect`` call (letterbox,
network, decode, NMS), median and 90th percentile over --repeats runs per frame. Integer models
run once per --engine (native, numpy); ``FACEDET_ISA`` picks the native instruction set.
--model-onnx times a facedet ONNX file (``facedet export MODEL --format onnx``) under onnxruntime
(the [onnx] extra) with the same frames and thread counts.
``--json`` prints a flat list of rows: detector, engine, isa, threads, frame ("640x480"),
median_ms, p90_ms, faces, peak_rss_mb, ...

    facedet bench --model-fdet weights/default.fdet --checkpoint runs/dup/best.pt \\
        --float-checkpoint runs/tiny/best.pt --peer haar --repeats 20
    facedet bench --model-fdet dupnet-tinier-yolo --engine native,numpy --threads 1 --json
    facedet bench --model-fdet dupnet-tinier-yolo --model-onnx dupnet.onnx --engine native --threads 1
    facedet bench            # bare: the default integer model and the Haar peer

Every model is checked in this process before the first timing run starts.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS")
SYNTHETIC_SIZES = ((640, 480), (450, 340))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``facedet bench``."""
    parser.add_argument(
        "--model-fdet",
        action="append",
        default=[],
        metavar="NAME|FILE",
        help="integer model file (.fdet) or model name (repeatable)",
    )
    parser.add_argument(
        "--model-onnx",
        action="append",
        default=[],
        metavar="FILE",
        help="facedet ONNX file (.onnx) run by onnxruntime (repeatable)",
    )
    parser.add_argument(
        "--engine", default=None, help="integer engines to time, comma-separated: native,numpy (default: the default)"
    )
    parser.add_argument("--checkpoint", metavar="FILE", help="quantized training checkpoint (fake-quant torch model)")
    parser.add_argument("--float-checkpoint", metavar="FILE", help="float Tiny-YOLO checkpoint (torch)")
    parser.add_argument("--peer", action="append", default=[], metavar="NAME", help="peer detector, e.g. haar")
    parser.add_argument("--frames", metavar="DIR", help="images to time on (default: synthetic 640x480 and 450x340)")
    parser.add_argument("--max-frames", type=int, default=4, help="frames taken from --frames (default 4)")
    parser.add_argument("--repeats", type=int, default=10, help="timed runs per frame (default 10)")
    parser.add_argument("--img-size", type=int, help="network input size for all models (default: each model's)")
    parser.add_argument("--threads", default="1,all", help="thread counts to run, comma-separated (default 1,all)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def synthetic_frames(out_dir: Path) -> list[Path]:
    """Smooth random frames with a few bright ellipses, at 640x480 and 450x340 (PNG files)."""
    import cv2
    import numpy as np

    rng = np.random.default_rng(0)
    paths = []
    for width, height in SYNTHETIC_SIZES:
        small = rng.integers(0, 256, (height // 40, width // 40, 3)).astype(np.uint8)
        frame = cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)
        for _ in range(3):
            centre = (int(rng.integers(60, width - 60)), int(rng.integers(60, height - 60)))
            axes = (int(rng.integers(20, 50)), int(rng.integers(30, 60)))
            cv2.ellipse(frame, centre, axes, 0, 0, 360, (150, 170, 200), -1)
        path = out_dir / f"synthetic_{width}x{height}.png"
        cv2.imwrite(str(path), frame)
        paths.append(path)
    return paths


def worker(spec: dict[str, Any]) -> dict[str, Any]:
    """Run in a fresh process: load one detector, time it on the frames, report times and memory."""
    import resource
    import time

    import cv2
    import numpy as np

    threads = spec["threads"]
    cv2.setNumThreads(threads)
    if spec.get("engine"):
        os.environ["FACEDET_ENGINE"] = spec["engine"]
    if spec["source"].endswith((".pt", ".pth", ".ckpt")):
        import torch

        torch.set_num_threads(threads)
    from facedet.runtime import load_detector

    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    detector = load_detector(spec["source"], img_size=spec.get("img_size"))
    frames = [(Path(p).name, np.asarray(cv2.imread(p, cv2.IMREAD_COLOR), np.uint8)) for p in spec["frames"]]
    results = []
    for name, frame in frames:
        detector.detect(frame)  # warm-up: caches, lazy allocations
        times = []
        for _ in range(spec["repeats"]):
            start = time.perf_counter()
            detections = detector.detect(frame)
            times.append((time.perf_counter() - start) * 1e3)
        results.append(
            {
                "frame": name,
                "size": f"{frame.shape[1]}x{frame.shape[0]}",
                "median_ms": float(np.median(times)),
                "p90_ms": float(np.percentile(times, 90)),
                "faces": len(detections),
            }
        )
    return {
        "detector": spec["label"],
        "name": detector.name,
        "engine": getattr(detector, "engine", None),
        "isa": getattr(detector, "isa", None),
        "threads": threads,
        "frames": results,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "rss_after_imports_mb": rss_before / 1024,
        "stored_bytes": detector.stored_bytes,
    }


def _run_worker(spec: dict[str, Any]) -> dict[str, Any]:
    env = dict(os.environ)
    for var in THREAD_VARS:  # must be set before numpy/torch start their thread pools
        env[var] = str(spec["threads"])
    code = (
        "import json, sys; from facedet.commands.bench import worker; "
        "print(json.dumps(worker(json.loads(sys.argv[1]))))"
    )
    result = subprocess.run([sys.executable, "-c", code, json.dumps(spec)], capture_output=True, text=True, env=env)
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"{spec['label']} ({spec['threads']} threads) failed: {last}")
    row: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return row


def flat_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One JSON row per detector, engine, thread count and frame."""
    flat = []
    for row in rows:
        common = {key: value for key, value in row.items() if key != "frames"}
        for frame in row["frames"]:
            flat.append(common | {"frame": frame["size"], "frame_file": frame["frame"]} | _times(frame))
    return flat


def _times(frame: dict[str, Any]) -> dict[str, Any]:
    return {"median_ms": frame["median_ms"], "p90_ms": frame["p90_ms"], "faces": frame["faces"]}


def _check_source(source: str, img_size: int | None) -> None:
    """Load the model once here (integer files and peers: fast); checkpoints are checked by type."""
    from facedet.commands.common import check_img_size, require_extra
    from facedet.paths import resolve_model
    from facedet.runtime import is_checkpoint_file, load_detector

    check_img_size(img_size)
    if source.startswith("peer:") or not is_checkpoint_file(resolve_model(source)):
        load_detector(source, img_size=img_size)
    else:
        require_extra("train", "torch", f"timing the checkpoint {source}")


def format_table(rows: list[dict[str, Any]]) -> str:
    """One line per detector, thread count and frame."""
    header = (
        f"{'detector':<28} {'engine':<11} {'thr':>3} {'frame':>9} {'median ms':>10} {'p90 ms':>8} {'faces':>5} "
        f"{'peak RSS MB':>11}"
    )
    lines = [header, "-" * len(header)]
    for row in rows:
        for frame in row["frames"]:
            lines.append(
                f"{row['detector']:<28} {row['engine'] or '-':<11} {row['threads']:>3} {frame['size']:>9} "
                f"{frame['median_ms']:>10.1f} "
                f"{frame['p90_ms']:>8.1f} {frame['faces']:>5} {row['peak_rss_mb']:>11.0f}"
            )
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Run every requested detector at every thread count; print the table (or JSON)."""
    all_threads = os.cpu_count() or 1
    try:
        thread_counts = [all_threads if t.strip() == "all" else int(t) for t in args.threads.split(",")]
    except ValueError:
        print(f"error: --threads takes numbers or 'all', got {args.threads!r}", file=sys.stderr)
        return 2
    engines: list[str | None] = [None]
    if args.engine:
        engines = [e.strip() for e in args.engine.split(",")]
        if not set(engines) <= {"native", "numpy"}:
            print(f"error: --engine takes native and/or numpy, got {args.engine!r}", file=sys.stderr)
            return 2
    detectors: list[tuple[str, str, str | None]] = []
    if args.float_checkpoint:
        detectors.append(("torch float", args.float_checkpoint, None))
    if args.checkpoint:
        detectors.append(("torch fake-quant", args.checkpoint, None))
    for model in args.model_fdet:
        label = Path(model).stem if len(args.model_fdet) > 1 else "integer engine"
        detectors += [(label, model, engine) for engine in engines]
    detectors += [(f"onnx {Path(path).stem}", path, None) for path in args.model_onnx]
    detectors += [(f"peer {name}", f"peer:{name}", None) for name in args.peer]
    if not detectors:  # bare `facedet bench`: the default integer model against the Haar peer
        detectors = [("integer engine", "default", engine) for engine in engines] + [("peer haar", "peer:haar", None)]
    for source in dict.fromkeys(source for _, source, _ in detectors):  # a bad model is one line now
        _check_source(source, args.img_size)
    with tempfile.TemporaryDirectory(prefix="facedet-bench-") as tmp:
        if args.frames:
            from facedet.commands.export import image_files

            frames = image_files(args.frames, args.max_frames)
            if not frames:
                print(f"error: no images under {args.frames}", file=sys.stderr)
                return 1
        else:
            frames = synthetic_frames(Path(tmp))
        from tqdm import tqdm

        rows, failed = [], 0
        runs = [(label, source, engine, t) for label, source, engine in detectors for t in dict.fromkeys(thread_counts)]
        for label, source, engine, threads in tqdm(runs, desc="bench", unit="run", disable=None):
            spec = {
                "label": label,
                "source": str(source),
                "threads": threads,
                "engine": engine,
                "frames": [str(f) for f in frames],
                "repeats": args.repeats,
                "img_size": args.img_size,
            }
            try:
                rows.append(_run_worker(spec))
            except RuntimeError as exc:
                print(f"error: {exc}", file=sys.stderr)
                failed += 1
    if args.json:
        print(json.dumps(flat_rows(rows), indent=2))
    else:
        print(f"facedet bench: {len(frames)} frame(s), {args.repeats} runs each, {all_threads} CPU(s)")
        print(format_table(rows))
    return 1 if failed else 0
