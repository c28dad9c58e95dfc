"""Build of the optional C extensions; everything else is in pyproject.toml.

- ``facedet.engine._native`` (csrc/native/): the native integer engine. The SIMD paths are chosen at
  run time (``__builtin_cpu_supports``), so no ``-march`` flag is used and the build runs on any
  x86-64 or ARM CPU.
- ``facedet._jpegcheck`` (csrc/jpegcheck/): libjpeg-turbo's own warnings on a JPEG's entropy-coded
  data (damaged uploads); needs the libjpeg headers and library (Debian: libjpeg62-turbo-dev).

Both are compiled by the machine's own C compiler during ``pip install`` and both are optional:
where no compiler or no libjpeg headers are found (or a build fails), the install goes on without
that extension and ``facedet`` falls back (numpy engine; structural JPEG scan), saying so once at
run time.
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

jpegcheck = Extension(
    "facedet._jpegcheck",
    sources=[str(Path("csrc", "jpegcheck", "jpegcheck_module.c"))],
    libraries=["jpeg"],
    extra_compile_args=[] if sys.platform == "win32" else ["-std=c11", "-O2"],
    optional=True,
)

setup(ext_modules=[native, jpegcheck])
