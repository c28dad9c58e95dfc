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

    name = "recorder"

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


class _Oracle:
    """A detector that returns each val image's annotated faces, in the order the images come."""

    name = "oracle"

    def __init__(self, wider_root: Path) -> None:
        from facedet.data.wider import load_wider

        samples, _ = load_wider(wider_root, "val")
        self.answers = [Detections(s.boxes.astype(np.float32), np.ones(len(s.boxes), np.float32)) for s in samples]

    def detect(self, image: np.ndarray) -> Detections:
        return self.answers.pop(0)


def test_versus_compares_two_models_on_the_same_images(
    wider_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fake_load(path: Path, *_: Any) -> Any:
        return _Oracle(wider_root) if path.name == "good.fdet" else _Recorder()

    monkeypatch.setattr(eval_command, "_load_model", fake_load)
    out = tmp_path / "versus.json"
    argv = ["eval", "wider", "--data-root", str(wider_root), "--model", "good.fdet", "--versus", "blind.fdet"]
    assert main(argv + ["--bootstrap", "50", "--min-face", "0", "4", "--out", str(out)]) == 0
    by_size = json.loads(out.read_text())["min_face"]  # one detection pass, scored per face size
    assert set(by_size) == {"0", "4"} and by_size["4"]["ignored"] >= by_size["0"]["ignored"]
    for metrics in by_size.values():
        assert metrics["AP50"] == pytest.approx(1.0) and metrics["versus"]["AP50"] == 0.0
        comparison = metrics["versus"]["comparison"]
        assert comparison["difference"] == pytest.approx(1.0) and comparison["resamples"] == 50
        assert comparison["ci95_low"] > 0 and comparison["significant"] is True


def test_bootstrap_gives_one_models_interval(wider_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(eval_command, "_load_model", lambda *_: _Oracle(wider_root))
    out = tmp_path / "one.json"
    argv = ["eval", "wider", "--data-root", str(wider_root), "--model", "good.fdet", "--bootstrap", "40"]
    assert main(argv + ["--out", str(out)]) == 0
    metrics = json.loads(out.read_text())
    low, high = metrics["AP50_ci95"]
    assert low <= metrics["AP50"] <= high and "versus" not in metrics


def test_a_bad_versus_file_fails_before_any_detection(
    wider_root: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    recorder = _Recorder()

    def fake_load(path: Path, *_: Any) -> _Recorder:
        if path.name == "missing.fdet":
            raise FileNotFoundError(f"{path}: no such model file")
        return recorder

    monkeypatch.setattr(eval_command, "_load_model", fake_load)
    argv = ["eval", "wider", "--data-root", str(wider_root), "--model", "a.fdet", "--versus", "missing.fdet"]
    assert main(argv) == 2
    assert recorder.images == [] and "missing.fdet: no such model file" in capsys.readouterr().err


def test_held_out_scores_only_images_outside_the_training_runs_subsets(
    wider_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from facedet.data.wider import load_wider, seeded_subset

    samples, _ = load_wider(wider_root, "val")
    # What `facedet train --max-val-images 2 --val-seed 3` validated on (facedet.training.data.load_split).
    picked = {s.path for s in seeded_subset(samples, 2, 3)}
    expected = [s for s in samples if s.path not in picked]
    recorder = _Recorder()
    monkeypatch.setattr(eval_command, "_load_model", lambda *_: recorder)
    out = tmp_path / "held.json"
    argv = ["eval", "wider", "--data-root", str(wider_root), "--model", "any.fdet", "--out", str(out)]
    assert main(argv + ["--held-out", "2:3"]) == 0
    assert json.loads(out.read_text())["images"] == len(expected) == 2
    shown = [im.shape for im in recorder.images]
    import cv2

    assert shown == [cv2.imread(str(s.path)).shape for s in expected]
    # Subsets that cover every image leave nothing: one line.
    capsys.readouterr()
    assert main(argv + ["--held-out", "4:0"]) == 2
    assert "leaves no val image" in capsys.readouterr().err
    assert main(argv + ["--held-out", "two:3"]) == 2
    assert "expected N:SEED" in capsys.readouterr().err
