"""Without the [onnx] extra, ONNX export and .onnx models fail in one line that names the extra."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from facedet.cli import main


@pytest.mark.parametrize("module", ["onnx", "onnxruntime"])
def test_missing_onnx_extra_is_one_line(
    tmp_path: Path, module: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # import raises ImportError, as when not installed
    if module == "onnx":
        argv = ["export", "dupnet-tinier-yolo", "--format", "onnx", "--out", str(tmp_path / "m.onnx")]
    else:
        (tmp_path / "m.onnx").write_bytes(b"")
        argv = ["detect", str(tmp_path), "--model", str(tmp_path / "m.onnx")]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "[onnx] extra" in err and f"{module} is not installed" in err
