"""`facedet eval wider`: every val image goes to the detector, in colour or (--gray) as equal channels."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import facedet.commands.eval as eval_command
from facedet.cli import main
from facedet.detections import Detections


class _Recorder:
    """A detector that finds nothing and keeps what it was shown."""

    def __init__(self) -> None:
        self.images: list[np.ndarray] = []

    def detect(self, image: np.ndarray) -> Detections:
        self.images.append(image)
        return Detections.empty()


@pytest.mark.parametrize("gray", [False, True])
def test_wider_eval_feeds_colour_or_gray_images(
    wider_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gray: bool
) -> None:
    recorder = _Recorder()

    def fake_load(*_: Any) -> _Recorder:
        return recorder

    monkeypatch.setattr(eval_command, "_load_model", fake_load)
    out = tmp_path / "wider.json"
    argv = ["eval", "wider", "--data-root", str(wider_root), "--model", "any.fdet", "--out", str(out)]
    assert main(argv + (["--gray"] if gray else [])) == 0
    assert len(recorder.images) == 4  # the fixture's val images
    same = [bool((im[..., 0] == im[..., 1]).all() and (im[..., 1] == im[..., 2]).all()) for im in recorder.images]
    assert all(same) if gray else not any(same)
    metrics = json.loads(out.read_text())
    assert metrics.get("gray", False) is gray and metrics["images"] == 4
