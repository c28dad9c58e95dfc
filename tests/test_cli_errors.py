"""Every CLI mistake is one line on stderr and exit code 2, found before any slow work."""

from __future__ import annotations

import sys
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from facedet.cli import main
from facedet.testing import write_random_model

REPO = Path(__file__).resolve().parent.parent
FACES = REPO / "tests" / "data" / "service" / "faces_640x480.jpg"
FDDB = REPO / "tests" / "data" / "fddb"


def one_line_error(capsys: pytest.CaptureFixture[str], *needles: str) -> str:
    """The captured stderr, checked to be exactly one line mentioning every needle."""
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("facedet"), err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in err, err
    return err


@pytest.fixture()
def model(tmp_path: Path) -> Path:
    return write_random_model(tmp_path / "m.fdet")


@pytest.fixture()
def not_a_model(tmp_path: Path) -> Path:
    path = tmp_path / "notamodel.txt"
    path.write_text("hello\n")
    return path


@pytest.fixture()
def fake_checkpoint(tmp_path: Path) -> Path:
    """A zip archive named .pt, as torch.save writes: enough to be taken for a checkpoint."""
    path = tmp_path / "ckpt.pt"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("ckpt/data.pkl", b"")
    return path


def test_detect_rejects_a_score_out_of_range(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["detect", str(FACES), "--min-score", "2"]) == 2
    one_line_error(capsys, "--min-score", "between 0 and 1")


def test_detect_unwritable_out_fails_before_the_model_loads(
    tmp_path: Path, model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    assert main(["detect", str(FACES), "--model", str(model), "--out", str(blocker / "sub")]) == 2
    one_line_error(capsys, "--out", "a-file")
    assert main(["detect", str(FACES), "--model", str(model), "--save-txt"]) == 2
    one_line_error(capsys, "--out")


def test_unknown_model_name_lists_the_names(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["detect", str(FACES), "--model", "no-such-model"]) == 2
    one_line_error(capsys, "no-such-model", "dupnet-tinier-yolo", "ifq-tinier-yolo")


def test_detect_img_size_must_fit_the_stride(model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["detect", str(FACES), "--model", str(model), "--img-size", "100"]) == 2
    one_line_error(capsys, "--img-size 100", "stride")


def test_serve_truncated_model_is_one_line(tmp_path: Path, model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("fastapi")
    truncated = tmp_path / "truncated.fdet"
    truncated.write_bytes(model.read_bytes()[:200])
    assert main(["serve", "--model", str(truncated)]) == 2  # fails before uvicorn starts
    one_line_error(capsys, "truncated.fdet")


def test_summary_of_a_text_file(not_a_model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["summary", str(not_a_model)]) == 2
    one_line_error(capsys, "notamodel.txt", "not an integer model")


def test_summary_and_export_of_a_checkpoint_without_torch_name_the_extra(
    tmp_path: Path, fake_checkpoint: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)  # the serving install: no torch
    assert main(["summary", str(fake_checkpoint)]) == 2
    one_line_error(capsys, "facedet-tiny[train]")
    assert main(["export", str(fake_checkpoint), "--out", str(tmp_path / "m.fdet")]) == 2
    one_line_error(capsys, "facedet-tiny[train]")


def test_export_refuses_other_formats(
    tmp_path: Path, fake_checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["export", str(fake_checkpoint), "--out", str(tmp_path / "x.onnx")]) == 2
    one_line_error(capsys, "x.onnx", ".fdet", "ONNX")
    assert not (tmp_path / "x.onnx").exists()


def test_export_of_a_non_checkpoint(tmp_path: Path, not_a_model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", str(not_a_model), "--out", str(tmp_path / "m.fdet")]) == 2
    one_line_error(capsys, "not a training checkpoint")


def test_eval_fddb_bad_root_and_bad_model(
    tmp_path: Path, not_a_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = ["--out", str(tmp_path / "report")]
    assert main(["eval", "fddb", "--fddb-root", str(tmp_path / "nowhere"), "--peer", "haar", *out]) == 2
    one_line_error(capsys, "--fddb-root", "nowhere")
    assert main(["eval", "fddb", "--fddb-root", str(tmp_path), "--peer", "haar", *out]) == 2
    one_line_error(capsys, "FDDB-folds")
    # A bad model after a good peer: found before the peer runs over the images.
    assert main(["eval", "fddb", "--fddb-root", str(FDDB), "--peer", "haar", "--model", str(not_a_model), *out]) == 2
    one_line_error(capsys, "notamodel.txt")
    assert not (tmp_path / "report" / "haar").exists()


def test_bench_bad_model_is_checked_before_timing(not_a_model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--model-fdet", str(not_a_model)]) == 2
    one_line_error(capsys, "notamodel.txt")


def test_argparse_errors_are_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["detect"]) == 2
    one_line_error(capsys, "facedet detect", "--help")


def test_missing_extra_import_error_names_the_extra(capsys: pytest.CaptureFixture[str]) -> None:
    from facedet.commands.common import missing_module_message

    message = missing_module_message(ModuleNotFoundError("No module named 'fastapi'", name="fastapi"))
    assert "facedet-tiny[serve]" in message


def test_detect_folder_glob_video_and_saved_outputs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The shipped DupNet model by name on a folder, a glob and a video; labels and crops on disk."""
    folder = tmp_path / "photos"
    folder.mkdir()
    image = cv2.imread(str(FACES))
    cv2.imwrite(str(folder / "a.jpg"), image)
    cv2.imwrite(str(folder / "b.png"), image[:, ::-1])
    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 5.0, (320, 240))
    for i in range(3):
        writer.write(np.roll(cv2.resize(image, (320, 240)), 3 * i, axis=1))
    writer.release()
    out = tmp_path / "out"
    args = [str(folder), str(tmp_path / "photos" / "*.png"), str(video), "--model", "dupnet-tinier-yolo"]
    assert main(["detect", *args, "--out", str(out), "--save-txt", "--save-crops"]) == 0
    printed = capsys.readouterr().out
    assert "a.jpg: " in printed and printed.count("b.png: ") == 2
    labels = (out / "labels" / "a.txt").read_text().splitlines()
    assert labels and all(len(line.split()) == 5 for line in labels)
    assert {int(line.split()[0]) for line in (out / "labels" / "clip.txt").read_text().splitlines()} <= {0, 1, 2}
    assert len(list((out / "crops").glob("a_*.jpg"))) == len(labels)
    assert (out / "a.jpg").is_file() and (out / "clip.mp4").stat().st_size > 0
