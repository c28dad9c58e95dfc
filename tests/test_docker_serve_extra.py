"""The serving extra installs and runs without torch in a clean virtual environment (what the Dockerfile does).

Docker cannot run here, so this checks the Dockerfile's premise instead: a plain venv (no
system site-packages) + ``pip install .[serve]`` from the local tree gives an environment where
``import service.app`` works, ``import torch`` fails, and the app starts and answers /healthz.
Slow (a minute or two: pip installs numpy, OpenCV and FastAPI); marked ``slow``.
"""

from __future__ import annotations

import http.client
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def test_dockerfile_is_consistent() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    assert 'pip install ".[serve]"' in dockerfile and "torch" in dockerfile
    assert "COPY csrc/native/ csrc/native/" in dockerfile and "setup.py" in dockerfile
    # the libjpeg check of uploads: built against the headers, its runtime library kept after the purge
    assert "COPY csrc/jpegcheck/ csrc/jpegcheck/" in dockerfile and "libjpeg62-turbo-dev libjpeg62-turbo " in dockerfile
    assert "libjpeg_check_built" in dockerfile
    assert "!csrc/jpegcheck/" in (REPO / ".dockerignore").read_text()
    assert "USER facedet" in dockerfile and "HEALTHCHECK" in dockerfile and "EXPOSE 8000" in dockerfile
    assert 'CMD ["facedet", "serve", "--host", "0.0.0.0"' in dockerfile and "COPY weights/*.fdet" in dockerfile


@pytest.mark.slow
def test_serve_extra_installs_and_runs_without_torch(tmp_path: Path) -> None:
    from facedet.testing import free_port, write_random_model

    # Copy the tree (only what the image copies) so the build never writes into the checkout.
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE", "setup.py"):
        if (REPO / name).exists():
            shutil.copy2(REPO / name, src / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.so")  # the extension is built by the install
    for name in ("facedet", "service", "csrc/native", "csrc/jpegcheck"):
        shutil.copytree(REPO / name, src / name, ignore=ignore)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = str(venv / "bin" / "python")
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"}}
    install = subprocess.run(
        [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", f"{src}[serve]"],
        capture_output=True, text=True, timeout=900, env=env,
    )  # fmt: skip
    assert install.returncode == 0, install.stderr[-3000:]

    work = tmp_path / "run"  # run outside the checkout so the installed copy is what is imported
    work.mkdir()
    check = subprocess.run(
        [python, "-c", "import service.app, facedet.engine.native as n, facedet.jpeg_check as j, sys\n"
         "print(service.app.__file__, n.available_isas(), 'libjpeg check', j.libjpeg_check_built())\n"
         "try:\n    import torch\nexcept ImportError:\n    sys.exit(0)\nsys.exit('torch is importable')"],
        capture_output=True, text=True, timeout=120, cwd=work, env=env,
    )  # fmt: skip
    assert check.returncode == 0, check.stderr
    assert str(venv) in check.stdout
    if shutil.which("gcc"):  # pip compiled the native engine from csrc/native
        assert "'c'" in check.stdout, check.stdout
        if Path("/usr/include/jpeglib.h").is_file():  # ... and the libjpeg check from csrc/jpegcheck
            assert "libjpeg check True" in check.stdout, check.stdout

    # The packaged models: a model name works outside the checkout, with no weights/ folder around.
    faces = REPO / "tests" / "data" / "service" / "faces_640x480.jpg"
    detect = subprocess.run(
        [str(venv / "bin" / "facedet"), "detect", str(faces), "--model", "dupnet-tinier-yolo", "--json"],
        capture_output=True, text=True, timeout=120, cwd=work, env=env,
    )  # fmt: skip
    assert detect.returncode == 0 and '"boxes": [{' in detect.stdout, detect.stderr

    model = write_random_model(tmp_path / "model.fdet", seed=0)
    port = free_port()
    server_env = {**env, "FACEDET_MODEL": str(model)}
    cmd = [str(venv / "bin" / "facedet"), "serve", "--port", str(port)]  # the Dockerfile's CMD
    server = subprocess.Popen(cmd, cwd=work, env=server_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                conn.request("GET", "/healthz")
                response = conn.getresponse()
                if response.status == 200:
                    assert b'"model_loaded":true' in response.read()
                    conn.request("GET", "/")  # the browser demo page is packaged (package-data)
                    page = conn.getresponse()
                    assert page.status == 200 and b"/static/app.js" in page.read()
                    conn.request("GET", "/docs")  # Swagger UI from the installed fastapi-offline
                    docs = conn.getresponse().read()
                    assert b"swagger-ui-bundle.js" in docs and b"cdn.jsdelivr" not in docs
                    break
            except OSError:
                pass
            assert server.poll() is None, server.stdout.read().decode() if server.stdout else ""
            assert time.monotonic() < deadline, "server in the clean venv did not answer /healthz"
            time.sleep(0.2)
    finally:
        server.terminate()
        server.wait(10)
