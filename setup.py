"""Build of the optional native engine (``facedet.engine._native``); everything else is in pyproject.toml.

The extension is compiled from csrc/native/ by the machine's own C compiler during ``pip install``.
It is optional: where no compiler is found (or the build fails), the install goes on without it and
``facedet`` runs the numpy engine, saying so once at run time. The SIMD paths are chosen at run time
(``__builtin_cpu_supports``), so no ``-march`` flag is used and the build runs on any x86-64 or ARM CPU.
"""

from __future__ import annotations

import sys
from pathlib import Path

from setuptools import Extension, setup

SOURCES = ["fdn_module.c", "fdn_c.c", "fdn_avx2.c", "fdn_avxvnni.c", "fdn_avx512vnni.c"]
# -ffp-contract=off: the head's float multiply and add must stay two roundings (no FMA).
FLAGS = [] if sys.platform == "win32" else ["-std=c11", "-O3", "-ffp-contract=off", "-fno-strict-aliasing"]

native = Extension(
    "facedet.engine._native",
    sources=[str(Path("csrc", "native", name)) for name in SOURCES],
    depends=[str(Path("csrc", "native", name)) for name in ("fdn.h", "fdn_layer.h", "fdn_avx256.h")],
    extra_compile_args=FLAGS,
    optional=True,
)

setup(ext_modules=[native])
