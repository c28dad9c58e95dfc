"""``facedet detect``, ``facedet export`` and ``facedet summary`` end to end (in-process)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from facedet.cli import main
from facedet.testing import write_random_model


@pytest.fixture()
def image_file(tmp_path: Path) -> Path:
    small = np.random.default_rng(0).integers(0, 256, (6, 8, 3)).astype(np.uint8)
    path = tmp_path / "frame.png"
    cv2.imwrite(str(path), cv2.resize(small, (160, 120), interpolation=cv2.INTER_CUBIC))
    return path


def test_detect_json_and_bad_image(tmp_path: Path, image_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = write_random_model(tmp_path / "m.fdet")
    bad = tmp_path / "bad.jpg"
    bad.write_text("not an image")
    out = tmp_path / "drawn"
    code = main(
        ["detect", str(image_file), str(bad), str(tmp_path / "gone.png"), str(image_file), "--model", str(model)]
        + ["--json", "--min-score", "0", "--out", str(out)]
    )
    captured = capsys.readouterr()
    assert code == 1
    records = [json.loads(line) for line in captured.out.splitlines()]
    assert len(records) == 2 and records[0] == records[1]
    assert records[0]["file"] == str(image_file) and (records[0]["width"], records[0]["height"]) == (160, 120)
    assert records[0]["boxes"] and set(records[0]["boxes"][0]) == {"x", "y", "width", "height", "score"}
    assert "bad.jpg" in captured.err and "gone.png" in captured.err
    assert (out / "frame.png").is_file()


def test_detect_default_model_from_env(
    tmp_path: Path, image_file: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FACEDET_MODEL", str(write_random_model(tmp_path / "m.fdet")))
    assert main(["detect", str(image_file), "--min-score", "0"]) == 0
    assert "frame.png:" in capsys.readouterr().out


def test_detect_missing_model(tmp_path: Path, image_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["detect", str(image_file), "--model", str(tmp_path / "none.fdet")]) == 2
    assert "none.fdet" in capsys.readouterr().err


def test_detect_directory_as_model_says_directory(
    tmp_path: Path, image_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["detect", str(image_file), "--model", str(tmp_path)]) != 0
    err = capsys.readouterr().err
    assert "is a directory" in err and "no such" not in err and "Traceback" not in err


def test_detect_refuses_a_code_carrying_checkpoint(
    tmp_path: Path, image_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    torch = pytest.importorskip("torch")
    import os

    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return os.mkdir, (str(marker),)

    torch.save({"format": "facedet-checkpoint", "format_version": 1, "x": Evil()}, tmp_path / "evil.pt")
    assert main(["detect", str(image_file), "--model", str(tmp_path / "evil.pt")]) != 0
    assert "refused" in capsys.readouterr().err and not marker.exists()


def test_checkpoint_and_export_give_the_same_detections(
    tmp_path: Path, image_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("torch")
    from facedet.models import build_model, model_config
    from facedet.models.checkpoint import save_checkpoint
    from facedet.testing import randomize_bn

    config = model_config("dupnet-tinier-yolo", img_size=64)
    model = build_model(config)
    randomize_bn(model, 2)
    ckpt = save_checkpoint(tmp_path / "d.pt", {"model_config": config.to_dict(), "model": model.state_dict()})
    fdet = tmp_path / "d.fdet"
    assert main(["export", str(ckpt), "--out", str(fdet)]) == 0
    assert fdet.stat().st_size <= 37_786
    capsys.readouterr()
    results = []
    for source in (ckpt, fdet):
        assert main(["detect", str(image_file), "--model", str(source), "--json", "--min-score", "0"]) == 0
        results.append(json.loads(capsys.readouterr().out))
    assert results[0] == results[1] and results[0]["boxes"]
    assert main(["summary", str(fdet)]) == 0
    text = capsys.readouterr().out
    assert "31,102" in text and "overhead" in text
    assert main(["summary", str(ckpt), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["total"]["stored_bytes"] == 31_102


def test_summary_preset_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["summary", "--model", "ifq-tinier-yolo", "--img-size", "416", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["img_size"] == 416 and data["total"]["stored_bytes"] == 209_718


def test_bench_smoke(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = write_random_model(tmp_path / "m.fdet")
    command = ["bench", "--model-fdet", str(model), "--repeats", "2", "--threads", "1", "--engine", "native,numpy"]
    assert main([*command, "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(row["engine"], row["frame"]) for row in rows] == [
        (engine, frame) for engine in ("native", "numpy") for frame in ("640x480", "450x340")
    ]
    assert all(row["threads"] == 1 and row["median_ms"] > 0 and row["p90_ms"] >= row["median_ms"] for row in rows)
    assert rows[0]["peak_rss_mb"] > 0 and rows[-1]["isa"] is None
    assert main(["bench", "--model-fdet", str(model), "--engine", "fast"]) == 2


def test_load_detector_kinds(tmp_path: Path) -> None:
    from facedet.runtime import describe, load_detector

    model = write_random_model(tmp_path / "m.bin")  # found by its FDET magic, whatever the suffix
    engine = load_detector(model, img_size=72)
    expected = {"name": "tiny-random", "img_size": 72, "stored_bytes": engine.stored_bytes, "macs": engine.macs}
    assert describe(engine) == expected
    with pytest.raises(FileNotFoundError):
        load_detector(tmp_path / "missing.fdet")
    other = tmp_path / "notes.txt"
    other.write_text("hello")
    with pytest.raises(ValueError, match="not an integer model"):
        load_detector(other)
    with pytest.raises(ValueError, match="unknown peer"):
        load_detector("peer:no-such-peer")


def test_eval_fddb_run_json_records_the_detector(tmp_path: Path) -> None:
    """run.json (and so the report) carries the Detector protocol's fields, img_size included."""
    model = write_random_model(tmp_path / "m.fdet")
    fddb = Path(__file__).parent / "data" / "fddb"
    out = tmp_path / "eval"
    command = ["eval", "fddb", "--fddb-root", str(fddb), "--model", f"{model}:m", "--out", str(out), "--no-report"]
    assert main(command) == 0
    info = json.loads((out / "m" / "run.json").read_text())
    assert info["img_size"] == 64 and info["stored_bytes"] > 0 and info["macs"] > 0
