"""Score detectors on FDDB with the official protocol (and on WIDER val with COCO AP), write a report.

    facedet eval fddb --fddb-root DIR --out DIR [--detections FILE[:LABEL] ...] [--ellipses]
                      [--model PATH[:LABEL] ...] [--peer NAME ...] [--img-size N] [--max-images N]
    facedet eval wider --data-root DIR (--model PATH | --peer NAME) [--versus PATH] [--min-face PX] [--gray]

Per model, ``--out/<label>/`` gets ``DiscROC.txt``, ``ContROC.txt`` (official layout),
``detections.txt`` (official format) and ``run.json`` (time per image, size, MACs); ``--out`` gets
``metrics.json``, ``report.md`` and ``report.html``. A ``--detections`` file with a ``run.json``
beside it (as written here) keeps that run's time, size and MACs in the report.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from facedet.commands import eval_wider
from facedet.commands.common import UsageError, check_img_size, existing_dir, positive_int, score
from facedet.commands.engine_args import add_engine_arguments, apply_engine_arguments

if TYPE_CHECKING:
    from facedet.data.fddb import FDDBSet
    from facedet.detections import Detector

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="target", metavar="TARGET", required=True)
    fddb = sub.add_parser("fddb", help="FDDB discrete/continuous ROC (official protocol) and report")
    fddb.add_argument(
        "--fddb-root",
        type=Path,
        default=Path("data/fddb"),
        help="FDDB root (FDDB-folds/, originalPics/); default data/fddb",
    )
    fddb.add_argument("--out", type=Path, required=True, help="output folder")
    fddb.add_argument(
        "--detections",
        action="append",
        default=[],
        metavar="FILE[:LABEL]",
        help="an FDDB-format detection file to score (repeatable)",
    )
    fddb.add_argument(
        "--ellipses",
        action="store_true",
        help="--detections files hold ellipses (major minor angle cx cy score), not rectangles",
    )
    fddb.add_argument(
        "--model",
        action="append",
        default=[],
        metavar="PATH[:LABEL]",
        help="a .fdet integer model or .pt checkpoint to run over the images (repeatable)",
    )
    fddb.add_argument(
        "--peer", action="append", default=[], metavar="NAME", help="a peer detector to run, e.g. haar (repeatable)"
    )
    fddb.add_argument("--img-size", type=int, default=None, help="network input size in pixels (model default)")
    fddb.add_argument("--max-images", type=positive_int, default=None, help="score only the first N present images")
    fddb.add_argument(
        "--min-score", type=score, default=0.01, help="lowest detection score kept (low, so the ROC reaches 2,000 FP)"
    )
    fddb.add_argument("--folds", type=int, nargs="+", default=None, help="fold numbers 1..10 (default all)")
    fddb.add_argument("--threads", type=positive_int, default=None, help="OpenCV/torch threads while detecting")
    add_engine_arguments(fddb, threads=False)
    fddb.add_argument("--samples", type=positive_int, default=4, help="FDDB images shown in the report figure")
    fddb.add_argument("--no-report", action="store_true", help="write ROCs and metrics.json only")

    wider = sub.add_parser("wider", help="WIDER val AP50 and AP50:95 (pycocotools), one model or two compared")
    eval_wider.add_arguments(wider)
    add_engine_arguments(wider, threads=False)


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    check_img_size(args.img_size)
    problem = apply_engine_arguments(args)  # eval's --threads defaults to the libraries' own thread counts
    if problem:
        raise UsageError(problem)
    if args.target == "wider":
        return eval_wider.run_wider(args, _load_model)
    return _run_fddb(args)


def split_label(spec: str) -> tuple[Path, str]:
    """``PATH[:LABEL]`` -> (path, label); the label defaults to the file stem."""
    path, sep, label = spec.rpartition(":")
    if sep and path and label and "/" not in label and "\\" not in label:
        return Path(path), label
    return Path(spec), Path(spec).stem


def _safe(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", label) or "model"


def _load_model(path: Path, img_size: int | None, min_score: float) -> Detector:
    from facedet.anchors import PostProcess
    from facedet.runtime import load_detector  # imported only when needed (torch for checkpoints)

    return load_detector(path, img_size=img_size, post=PostProcess(score_threshold=min_score, max_detections=200))


def _run_detector(detector: Detector, fddb: FDDBSet, out_dir: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run a Detector over the present images; returns (detections by name, run info)."""
    import cv2
    import numpy as np
    from tqdm import tqdm

    from facedet.data.fddb_format import boxes_to_rect_rows, write_detections

    detections: dict[str, Any] = {}
    total_s = 0.0
    for image in tqdm(fddb.images, desc=detector.name, unit="img"):
        bgr = cv2.imread(str(fddb.path(image)), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
        if bgr is None:
            raise FileNotFoundError(f"cannot read {fddb.path(image)}")
        start = time.perf_counter()
        dets = detector.detect(np.asarray(bgr, np.uint8))
        total_s += time.perf_counter() - start
        detections[image.name] = boxes_to_rect_rows(dets.boxes, dets.scores)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_detections(out_dir / "detections.txt", ((im.name, detections[im.name]) for im in fddb.images))
    info = {
        "ms_per_image": 1000.0 * total_s / max(1, len(fddb.images)),
        "images": len(fddb.images),
        "stored_bytes": detector.stored_bytes,
        "macs": detector.macs,
        "img_size": detector.img_size,
        "kind": "rect",
        "det_count": int(sum(len(v) for v in detections.values())),
    }
    (out_dir / "run.json").write_text(json.dumps(info, indent=2))
    return detections, info


def _check_fddb_args(args: argparse.Namespace) -> None:
    """Every argument problem as a UsageError, before anything slow."""
    if not (args.detections or args.model or args.peer):
        raise UsageError("nothing to score: give --detections, --model or --peer")
    if any(not 1 <= fold <= 10 for fold in args.folds or ()):
        raise UsageError(f"--folds {' '.join(map(str, args.folds))}: fold numbers are 1..10")
    existing_dir(args.fddb_root, "--fddb-root")
    if not (args.fddb_root / "FDDB-folds").is_dir():
        raise UsageError(f"--fddb-root {args.fddb_root}: no FDDB-folds/ folder (see data/README.md for the layout)")
    for spec in args.detections:
        if not split_label(spec)[0].is_file():
            raise UsageError(f"--detections {spec}: no such file")


def _load_detectors(args: argparse.Namespace) -> list[tuple[str, str, Detector]]:
    """(label, source, detector) of every --model, then every --peer."""
    from facedet.peers import load_peer

    detectors = []
    for path, label in map(split_label, args.model):
        detector = _load_model(path, args.img_size, args.min_score)
        # weights/default.fdet is a copy of the best model: label it by what it is.
        detectors.append((detector.name if label == "default" else label, f"model {path}", detector))
    detectors += [(name, f"peer {name}", load_peer(name)) for name in args.peer]
    return detectors


def _set_threads(args: argparse.Namespace) -> None:
    """--threads for OpenCV, and for torch when a --model may be a checkpoint."""
    if args.threads is None:
        return
    import cv2

    cv2.setNumThreads(args.threads)
    if args.model:
        try:
            import torch

            torch.set_num_threads(args.threads)
        except ImportError:
            pass


def _read_detection_files(
    args: argparse.Namespace, fddb: FDDBSet
) -> list[tuple[str, str, dict[str, Any], dict[str, Any]]]:
    """(label, source, detections by name, run info) of every --detections file."""
    from facedet.data.fddb_format import read_detections

    out = []
    for spec in args.detections:
        path, label = split_label(spec)
        detections = read_detections(path, fddb.order, kind="ellipse" if args.ellipses else "rect")
        sidecar = path.parent / "run.json"
        info = json.loads(sidecar.read_text()) if sidecar.exists() else {}
        if info.get("images") not in (None, len(fddb.images)):
            info = {k: v for k, v in info.items() if k != "ms_per_image"}  # timed on another image set
        out.append((label, f"detections file {path}", detections, info))
    return out


def _run_fddb(args: argparse.Namespace) -> int:
    from facedet.data.fddb import load_fddb
    from facedet.evaluation.fddb_eval import FDDBScorer

    _check_fddb_args(args)
    _set_threads(args)
    # Every model is loaded (and so checked) before the first image is read: a bad --model
    # fails in a second, not after another model's FDDB run.
    detectors = _load_detectors(args)
    fddb = load_fddb(args.fddb_root, args.folds).subset(args.max_images)
    print(
        f"FDDB: {len(fddb.images)} images with {fddb.num_faces} faces scored; "
        f"{len(fddb.missing)} images ({fddb.num_missing_faces} faces) missing from {args.fddb_root}, skipped"
    )
    args.out.mkdir(parents=True, exist_ok=True)
    scorer = FDDBScorer(fddb)
    runs: list[dict[str, Any]] = []  # one per model: label, source, evaluation, run info

    def score(label: str, source: str, detections: dict[str, Any], kind: str, info: dict[str, Any]) -> None:
        start = time.perf_counter()
        result = scorer.score(detections, kind)  # type: ignore[arg-type]
        result.roc.write(args.out / _safe(label))
        m: dict[str, Any] = result.metrics()
        print(
            f"{label}: disc TPR@1000FP {m['overall']['disc']['1000']:.4f}, "
            f"cont {m['overall']['cont']['1000']:.4f} ({time.perf_counter() - start:.1f} s to score)"
        )
        runs.append({"label": label, "source": source, "result": result, "info": info, "dets": detections})

    for label, source, detections, info in _read_detection_files(args, fddb):
        score(label, source, detections, "ellipse" if args.ellipses else "rect", info)
    for label, source, detector in detectors:
        detections, info = _run_detector(detector, fddb, args.out / _safe(label))
        score(label, source, detections, "rect", info)
    _write_results(args, fddb, runs)
    return 0


def _write_results(args: argparse.Namespace, fddb: FDDBSet, runs: list[dict[str, Any]]) -> None:
    """metrics.json, and unless --no-report report.md and report.html."""
    metrics = {
        "fddb_root": str(args.fddb_root),
        "images": len(fddb.images),
        "faces": fddb.num_faces,
        "missing_images": len(fddb.missing),
        "missing_faces": fddb.num_missing_faces,
        "models": {r["label"]: {"source": r["source"], **r["info"], **r["result"].metrics()} for r in runs},
    }
    (args.out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    if not args.no_report:
        from facedet.evaluation.report import ModelEntry, write_report

        entries = [
            ModelEntry(
                label=r["label"],
                source=r["source"],
                evaluation=r["result"],
                detections=r["dets"],
                stored_bytes=r["info"].get("stored_bytes"),
                macs=r["info"].get("macs"),
                ms_per_image=r["info"].get("ms_per_image"),
                img_size=r["info"].get("img_size"),
            )
            for r in runs
        ]
        md, html = write_report(args.out, entries, fddb, num_samples=args.samples)
        print(f"wrote {md} and {html}")
    print(f"wrote {args.out / 'metrics.json'}")
