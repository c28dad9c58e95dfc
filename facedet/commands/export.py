"""Fold a trained checkpoint into an integer model file (.fdet), or write a C header.

Quantized checkpoints (IFQ / DupNet) fold exactly and are verified bit for bit against the torch
model; a float Tiny-YOLO checkpoint exports to an 8-bit integer model calibrated on
--calibration-dir images. --c-header writes the weights and thresholds as C99 const arrays for
csrc/facedet_ref.c (from a checkpoint or an existing .fdet).

The input size stored in the file is --img-size, else the checkpoint's deployment size
(``deploy_img_size``, e.g. 416 for the shipped models), else its training size. Only integer model
files (.fdet) and C headers are written: there is no ONNX export. Exporting a checkpoint needs the
[train] extra (torch).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

from facedet.commands.common import UsageError, check_img_size, existing_dir, positive_int, require_extra, writable_file

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".pgm", ".webp")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``facedet export``."""
    parser.add_argument("source", metavar="CKPT", help="training checkpoint (.pt), or a .fdet with --c-header")
    parser.add_argument("--out", metavar="FILE", help="integer model file to write (.fdet)")
    parser.add_argument("--c-header", metavar="FILE", help="also (or only) write a C header (.h) for csrc/")
    parser.add_argument(
        "--calibration-dir",
        metavar="DIR",
        help="images (searched recursively) for 8-bit calibration and the parity check (default: synthetic)",
    )
    parser.add_argument(
        "--max-images", type=positive_int, default=64, help="images taken from --calibration-dir (default 64)"
    )
    parser.add_argument(
        "--img-size",
        type=int,
        default=None,
        help="deployment input size stored in the file (default: the checkpoint's deployment size)",
    )
    parser.add_argument(
        "--fddb-metrics",
        metavar="METRICS_JSON:LABEL",
        help="store this model's overall FDDB figures from a `facedet eval fddb` metrics.json in the file",
    )


def fddb_figures(spec: str) -> dict[str, float]:
    """``metrics.json:LABEL`` -> flat FDDB scalars (TPR at each FP count, discrete and continuous)."""
    import json

    path, _, label = spec.rpartition(":")
    if not path or not label:
        raise ValueError(f"--fddb-metrics wants METRICS_JSON:LABEL, got {spec!r}")
    models = json.loads(Path(path).read_text())["models"]
    if label not in models:
        raise ValueError(f"{path}: no model labelled {label!r} (have: {', '.join(models)})")
    overall = models[label]["overall"]
    return {
        f"fddb_{kind}_tpr_at_{fp}fp": round(float(value), 4)
        for kind in ("disc", "cont")
        for fp, value in overall[kind].items()
    }


def image_files(directory: str | Path, limit: int | None = None) -> list[Path]:
    """Image files under ``directory`` (recursive, sorted), at most ``limit`` spread evenly over
    the sorted list (WIDER Face sorts by scene: the first 64 files would all be parades)."""
    files = sorted(p for p in Path(directory).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not limit or len(files) <= limit:
        return files
    step = len(files) / limit
    return [files[int(i * step)] for i in range(limit)]


def read_images(files: list[Path]) -> list[Any]:
    import cv2

    images = []
    for path in files:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            print(f"warning: {path}: not a readable image, skipped", file=sys.stderr)
        else:
            images.append(image)
    return images


def check_args(args: argparse.Namespace, source: Path) -> None:
    """Every argument check, before calibration images are read or torch is imported."""
    from facedet.model_file import is_model_file

    if not source.is_file():
        raise UsageError(f"{source}: no such file")
    if not args.out and not args.c_header:
        raise UsageError("give --out FILE (.fdet) and/or --c-header FILE (.h)")
    if args.out and Path(args.out).suffix.lower() != ".fdet":
        raise UsageError(
            f"--out {args.out}: facedet export writes integer model files (.fdet) only (there is no ONNX or "
            "other export); name the file *.fdet, or use --c-header FILE.h for C"
        )
    if args.c_header and Path(args.c_header).suffix.lower() != ".h":
        raise UsageError(f"--c-header {args.c_header}: name the C header *.h")
    for flag, target in (("--out", args.out), ("--c-header", args.c_header)):
        if target:
            writable_file(target, flag)
    check_img_size(args.img_size)
    if args.calibration_dir:
        existing_dir(args.calibration_dir, "--calibration-dir")
    if is_model_file(source):
        if args.out:
            raise UsageError(f"{source} is already an integer model; use --c-header FILE.h")
        return
    from facedet.runtime import is_checkpoint_file

    if not is_checkpoint_file(source):
        raise UsageError(f"{source}: not a training checkpoint (.pt) or an integer model (.fdet)")
    require_extra("train", "torch", "exporting a checkpoint")


def run(args: argparse.Namespace) -> int:
    """Export; print the file, its size and its stored bytes."""
    from facedet.model_file import ModelFileError, is_model_file

    source = Path(args.source)
    check_args(args, source)
    try:
        extra = fddb_figures(args.fddb_metrics) if args.fddb_metrics else None
    except (OSError, KeyError) as exc:
        raise UsageError(f"--fddb-metrics {args.fddb_metrics}: {exc}") from None
    images = None
    if args.calibration_dir:
        images = read_images(image_files(args.calibration_dir, args.max_images))
        if not images:
            raise UsageError(f"--calibration-dir {args.calibration_dir}: no readable images")
    with tempfile.TemporaryDirectory(prefix="facedet-export-") as tmp:
        try:
            if is_model_file(source):
                fdet = source
            else:
                from facedet.export import export_checkpoint

                # --c-header alone still goes through a verified .fdet (in a temporary folder)
                target = Path(args.out) if args.out else Path(tmp) / (source.stem + ".fdet")
                fdet = export_checkpoint(
                    source, target, calibration_images=images, img_size=args.img_size, extra_metrics=extra
                )
                if args.out:
                    print(f"wrote {fdet} ({fdet.stat().st_size:,} bytes)")
            if args.c_header:
                from facedet.export_c import write_c_header

                header = write_c_header(fdet, args.c_header)
                print(f"wrote {header} ({header.stat().st_size:,} bytes)")
            from facedet.engine import IntEngine

            engine = IntEngine.load(fdet)
        except (ModelFileError, ValueError, RuntimeError) as exc:
            print(f"facedet export: error: {exc}", file=sys.stderr)
            return 1
    print(f"{engine.name}: {engine.stored_bytes:,} stored bytes, {engine.macs:,} MACs at {engine.config.img_size}")
    return 0
