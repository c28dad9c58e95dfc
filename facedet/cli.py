"""The ``facedet`` console script: one entry point, one subcommand per module.

Each subcommand lives in ``facedet/commands/<name>.py`` with ``add_arguments(parser)`` and
``run(args) -> int``. Those modules import nothing heavy at module level (torch, fastapi, ...
are imported inside ``run``), so ``facedet detect`` never loads torch and ``--help`` is instant.

Errors: a bad argument, a missing or foreign file, or a missing optional dependency is one line on
stderr (``facedet <command>: error: ...``) and exit code 2, never a traceback. An unexpected
failure is one line and exit code 1; ``FACEDET_DEBUG=1`` shows its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import sys
from typing import NoReturn

from facedet.commands.common import UsageError, missing_module_message

# name -> one-line help. The module facedet.commands.<name> (dashes -> underscores) does the work.
COMMANDS: dict[str, str] = {
    "train": "train a detector on WIDER Face",
    "summary": "per-layer parameters, stored bytes and MACs of a model, checkpoint or integer file",
    "eval": "score detectors on FDDB (official protocol) and write a report",
    "curves": "plot and tabulate training runs' per-epoch WIDER-val AP50 and loss",
    "export": "fold a trained checkpoint into an integer model file, or an integer model into ONNX",
    "detect": "detect faces in images (integer engine by default)",
    "bench": "time float, fake-quant and integer models and a peer on the same frames",
    "serve": "run the REST face-detection service",
    "camera": "live camera demo (window, or --headless video output)",
}


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (with where to find help) and exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
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
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:  # --help (0) or a usage error (2, already printed as one line)
        return stop.code if isinstance(stop.code, int) else 2
    if args.version:
        from facedet import __version__

        print(__version__)
        return 0
    if args.command is None:
        parser.print_help()
        return 2
    prog = f"facedet {args.command}"
    try:
        return int(args._module.run(args) or 0)
    except UsageError as exc:
        return _fail(prog, str(exc), 2)
    except ImportError as exc:
        return _fail(prog, missing_module_message(exc), 2)
    except OSError as exc:  # missing, unreadable or unwritable files named by the user
        where = f"{exc.filename}: " if exc.filename else ""
        return _fail(prog, f"{where}{exc.strerror or exc}" if exc.strerror else str(exc), 2)
    except ValueError as exc:  # ModelFileError, CheckpointError, FDDBFormatError, bad values
        return _fail(prog, str(exc).splitlines()[0] if str(exc) else type(exc).__name__, 2)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        if os.environ.get("FACEDET_DEBUG"):
            raise
        message = f"internal error: {type(exc).__name__}: {exc}".splitlines()[0]
        return _fail(prog, f"{message} (FACEDET_DEBUG=1 shows the traceback)", 1)


def _fail(prog: str, message: str, code: int) -> int:
    print(f"{prog}: error: {message}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
