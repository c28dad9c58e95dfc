"""The ``facedet`` console script: one entry point, one subcommand per module.

Each subcommand lives in ``facedet/commands/<name>.py`` with ``add_arguments(parser)`` and
``run(args) -> int``. Those modules import nothing heavy at module level (torch, fastapi, ...
are imported inside ``run``), so ``facedet detect`` never loads torch and ``--help`` is instant.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys

# name -> one-line help. The module facedet.commands.<name> (dashes -> underscores) does the work.
COMMANDS: dict[str, str] = {
    "train": "train a detector on WIDER Face",
    "summary": "per-layer parameters, stored bytes and MACs of a model, checkpoint or integer file",
    "eval": "score detectors on FDDB (official protocol) and write a report",
    "export": "fold a trained checkpoint into an integer model file",
    "detect": "detect faces in images (integer engine by default)",
    "bench": "time float, fake-quant and integer models and a peer on the same frames",
    "serve": "run the REST face-detection service",
    "camera": "live camera demo (window, or --headless video output)",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="facedet",
        description="Tiny face detectors: train, evaluate on FDDB, export to integers, detect, serve.",
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, help_text in COMMANDS.items():
        module_name = f"facedet.commands.{name.replace('-', '_')}"
        if importlib.util.find_spec(module_name) is None:  # a trimmed install may lack a command
            continue
        module = importlib.import_module(module_name)
        sub = subparsers.add_parser(name, help=help_text, description=module.__doc__)
        module.add_arguments(sub)
        sub.set_defaults(_module=module)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        from facedet import __version__

        print(__version__)
        return 0
    if args.command is None:
        parser.print_help()
        return 2
    return int(args._module.run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
