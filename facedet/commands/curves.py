"""Plot and tabulate training runs' per-epoch WIDER-val AP50 and loss from their JSONL logs.

Each LOG is a run folder (``--out`` of ``facedet train``; its log.jsonl is read) or a .jsonl file
(e.g. weights/logs/*.jsonl); ``LOG:label`` names its line. Prints a Markdown table (epochs, last
and best AP50 of faces >= 16 / >= 48 px) and writes a figure with one panel per metric.

    facedet curves runs/dupnet-c5x4 runs/dupnet-tinier-yolo-s5:preset --out curves.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

from facedet.commands.common import UsageError, require_extra, writable_file


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``facedet curves``."""
    parser.add_argument("logs", nargs="+", metavar="LOG", help="run folder or .jsonl log, optionally LOG:label")
    parser.add_argument("--out", default="curves.png", help="figure to write (.png, .svg, .pdf) (curves.png)")
    parser.add_argument("--no-plot", action="store_true", help="print the table only")


def split_label(spec: str) -> tuple[str, str | None]:
    """``path:label`` -> (path, label); a bare path (or one whose ':' is part of an existing name) -> (path, None)."""
    path, sep, label = spec.rpartition(":")
    if not sep or not path or Path(spec).exists():
        return spec, None
    return path, label or None


def run(args: argparse.Namespace) -> int:
    """Read every log, print the table, write the figure."""
    from facedet.evaluation.curves import format_table, read_curve, write_figure

    out = None if args.no_plot else writable_file(args.out, "--out")
    if out is not None:
        require_extra("eval", "matplotlib", "the figure (leave it out with --no-plot)")
    curves = []
    for spec in args.logs:
        path, label = split_label(spec)
        try:
            curve = read_curve(path, label)
        except (FileNotFoundError, ValueError) as exc:
            raise UsageError(str(exc)) from None
        if not curve.epochs:
            raise UsageError(f"{path}: no epoch lines yet (the first is written when epoch 1 is validated)")
        curves.append(curve)
    print(format_table(curves))
    if out is not None:
        print(f"wrote {write_figure(curves, out)}")
    return 0
