"""Per-layer parameters, stored bytes and MACs of a preset, a checkpoint or an integer model file.

facedet summary --model dupnet-tinier-yolo [--img-size 416] [--json]
facedet summary weights/default.fdet        # stored bytes read from the file + file overhead
facedet summary dupnet-tinier-yolo          # a shipped model by name (its .fdet file)
facedet summary runs/x/best.pt              # the checkpoint's config (needs the [train] extra)
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path
from typing import Any

from facedet.commands.common import UsageError, check_img_size, require_extra


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``facedet summary``."""
    parser.add_argument(
        "file", nargs="?", metavar="FILE", help="integer model (.fdet or a model name) or checkpoint (.pt)"
    )
    from facedet.models import MODELS  # torch-free: the presets are plain configs

    parser.add_argument("--model", metavar="NAME", help="a preset: " + ", ".join(MODELS))
    parser.add_argument("--img-size", type=int, help="input size for map sizes and MACs (default: the model's)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def file_layers(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """Stored bytes per layer as the file holds them (sum of each layer's arrays)."""
    from facedet.model_file import array_nbytes

    sizes = array_nbytes(manifest)
    rows = []
    for layer in manifest["layers"]:
        prefix = layer["name"] + "."
        arrays = {name[len(prefix) :]: size for name, size in sizes.items() if name.startswith(prefix)}
        rows.append({"name": layer["name"], "op": layer["op"], "arrays": arrays, "stored_bytes": sum(arrays.values())})
    return rows


def _fdet_summary(path: Path, img_size: int | None, as_json: bool) -> int:
    from facedet.config import ModelConfig
    from facedet.model_file import read_model_file
    from facedet.model_summary import format_table, summary_dict
    from facedet.model_version import model_version

    manifest, _ = read_model_file(path)
    config = ModelConfig.from_dict(manifest["model_config"])
    file_bytes = path.stat().st_size
    version = model_version(manifest.get("provenance"), hashlib.sha256(path.read_bytes()).hexdigest())
    rows = file_layers(manifest)
    stored = sum(r["stored_bytes"] for r in rows)
    if as_json:
        data = summary_dict(config, img_size) if config.quantized else {"model": config.name}
        data |= {
            "file": str(path),
            "version": version,
            "format_version": manifest["format_version"],
            "file_bytes": file_bytes,
            "file_stored_bytes": stored,
            "file_overhead_bytes": file_bytes - stored,
            "file_layers": rows,
            "metrics": manifest.get("metrics", {}),
            "provenance": manifest.get("provenance", {}),
        }
        print(json.dumps(data, indent=2))
        return 0
    if config.quantized:  # the config-derived table, whose stored bytes the file must equal
        print(format_table(config, img_size, file_bytes=file_bytes))
        print()
    print(f"{path}: {config.name}, version {version}, format {manifest['format_version']}")
    print(f"{'layer':<8} {'op':<15} {'stored B':>9}  arrays")
    for r in rows:
        detail = ", ".join(f"{k} {v:,}" for k, v in r["arrays"].items())
        print(f"{r['name']:<8} {r['op']:<15} {r['stored_bytes']:>9,}  {detail}")
    print(f"{'arrays':<24} {stored:>9,}")
    print(f"{'overhead':<24} {file_bytes - stored:>9,}  (header, manifest, checksum)")
    print(f"{'file':<24} {file_bytes:>9,}")
    for key, value in manifest.get("metrics", {}).items():
        print(f"metric {key}: {value}")
    return 0


def run(args: argparse.Namespace) -> int:
    """Print the summary table (or JSON)."""
    from facedet.model_file import is_model_file
    from facedet.model_summary import format_table, summary_dict

    if bool(args.file) == bool(args.model):
        raise UsageError("give either FILE or --model NAME")
    check_img_size(args.img_size)
    if args.model:
        from facedet.models import model_config

        config = model_config(args.model, **({"img_size": args.img_size} if args.img_size else {}))
    else:
        from facedet.paths import resolve_model
        from facedet.runtime import is_checkpoint_file

        path = resolve_model(args.file)
        if is_model_file(path):
            return _fdet_summary(path, args.img_size, args.json)
        if not is_checkpoint_file(path):
            raise UsageError(f"{path}: not an integer model (.fdet) or a training checkpoint (.pt)")
        require_extra("train", "torch", "`facedet summary` of a checkpoint")
        from facedet.config import ModelConfig
        from facedet.models.checkpoint import load_checkpoint

        config = ModelConfig.from_dict(load_checkpoint(path)["model_config"])
    if args.json:
        print(json.dumps(summary_dict(config, args.img_size), indent=2))
    else:
        print(format_table(config, args.img_size))
    return 0
