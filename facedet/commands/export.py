"""Fold a trained checkpoint into an integer model file (.fdet), write a C header, or an ONNX graph.

Quantized checkpoints (IFQ / DupNet) fold exactly and are verified bit for bit against the torch
model; a float Tiny-YOLO checkpoint exports to an 8-bit integer model calibrated on
--calibration-dir images. --c-header writes the weights and thresholds as C99 const arrays for
csrc/facedet_ref.c (from a checkpoint or an existing .fdet).

The input size stored in the file is --img-size, else the checkpoint's deployment size
(``deploy_img_size``, e.g. 416 for the shipped models), else its training size. Exporting a
checkpoint needs the [train] extra (torch).

--format onnx converts an integer model (a .fdet file or a model name such as dupnet-tinier-yolo)
into a standard ONNX graph (QLinearConv with the thresholds folded into its requantization, the
head in float; see facedet/onnx_graph.py) that takes the letterboxed uint8 NHWC BGR image and
returns the raw head map; `facedet detect --model FILE.onnx` runs it with onnxruntime. It needs the
[onnx] extra; when onnxruntime is installed the graph is checked against the integer engine.

    facedet export dupnet-tinier-yolo --format onnx --out dupnet.onnx
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
    parser.add_argument(
        "source",
        metavar="SOURCE",
        help="training checkpoint (.pt); a .fdet with --c-header; a .fdet or model name with --format onnx",
    )
    parser.add_argument("--out", metavar="FILE", help="file to write: .fdet (default format) or .onnx (--format onnx)")
    parser.add_argument(
        "--format",
        choices=("fdet", "onnx"),
        default="fdet",
        help="fdet: integer model from a checkpoint (default); onnx: ONNX graph from an integer model",
    )
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


def check_onnx_args(args: argparse.Namespace) -> Path:
    """Checks for --format onnx; the integer model file to convert."""
    from facedet.model_file import is_model_file
    from facedet.paths import resolve_model
    from facedet.runtime import is_checkpoint_file

    if not args.out or Path(args.out).suffix.lower() != ".onnx":
        raise UsageError(f"--format onnx writes an ONNX file: give --out FILE.onnx (got {args.out or 'none'})")
    for flag in ("c_header", "calibration_dir", "fddb_metrics"):
        if getattr(args, flag):
            raise UsageError(f"--{flag.replace('_', '-')} does not apply to --format onnx (it converts a .fdet as is)")
    writable_file(args.out, "--out")
    check_img_size(args.img_size)
    source = resolve_model(args.source)  # a path or a packaged model name; one-line FileNotFoundError
    if is_checkpoint_file(source):
        raise UsageError(
            f"{source}: a training checkpoint; export it to an integer model first "
            f"(facedet export {source} --out MODEL.fdet), then convert that with --format onnx"
        )
    if not is_model_file(source):
        raise UsageError(f"{source}: not an integer model file (.fdet); --format onnx converts .fdet files")
    require_extra("onnx", "onnx", "ONNX export")
    return source


def run_onnx(args: argparse.Namespace) -> int:
    """--format onnx: write, check against the integer engine when onnxruntime is there, report."""
    source = check_onnx_args(args)
    from facedet.export_onnx import export_onnx

    result = export_onnx(source, args.out, img_size=args.img_size)
    print(f"wrote {result.path} ({result.path.stat().st_size:,} bytes), {result.macs:,} conv MACs")
    for note in result.notes:
        print(f"  {note}")
    if result.checked_images:
        print(
            f"checked: onnxruntime gives the integer engine's raw head map bit for bit ({result.checked_images} images)"
        )
    else:
        print("not checked against the integer engine: onnxruntime is not installed (the [onnx] extra has it)")
    return 0


def check_args(args: argparse.Namespace, source: Path) -> None:
    """Every argument check, before calibration images are read or torch is imported."""
    from facedet.model_file import is_model_file

    if args.out and Path(args.out).suffix.lower() == ".onnx":
        raise UsageError(f"--out {args.out}: for an ONNX file add --format onnx (and give a .fdet or model name)")
    if not source.is_file():
        raise UsageError(f"{source}: no such file")
    if not args.out and not args.c_header:
        raise UsageError("give --out FILE (.fdet) and/or --c-header FILE (.h)")
    if args.out and Path(args.out).suffix.lower() != ".fdet":
        raise UsageError(
            f"--out {args.out}: name the integer model file *.fdet (or --format onnx with FILE.onnx, "
            "or --c-header FILE.h for C)"
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
    if args.format == "onnx":
        return run_onnx(args)
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
