"""Dense distillation (``--teacher-model``): the loss on hand-computed cases and a run with a teacher."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from facedet.cli import main
from facedet.config import ModelConfig
from facedet.models.checkpoint import load_checkpoint
from facedet.training.dense_distill import dense_distill_loss


@pytest.fixture(autouse=True)
def _restore_torch_threads() -> Iterator[None]:
    threads = torch.get_num_threads()  # train() sets it for the whole process
    yield
    torch.set_num_threads(threads)


def _head(tx: float, ty: float, tw: float, th: float, obj: float, batch: int = 1) -> torch.Tensor:
    """(B, 5, 1, 1): one anchor, one cell."""
    return torch.tensor([tx, ty, tw, th, obj]).view(1, 5, 1, 1).repeat(batch, 1, 1, 1)


def test_hand_computed_terms() -> None:
    # teacher: objectness 0.5 (logit 0), x offset sigmoid(ln 3) = 0.75; student: objectness 0.75, x 0.5, tw 0.5
    teacher = _head(math.log(3), 0.0, 0.0, 0.0, 0.0, batch=2)
    student = _head(0.0, 0.0, 0.5, 0.0, math.log(3), batch=2)
    terms = dense_distill_loss(student, teacher, num_anchors=1)
    # KL(0.5 || 0.75) = 0.5 ln(0.5 / 0.75) + 0.5 ln(0.5 / 0.25) = 0.5 ln(4/3), per image
    assert terms["kd_obj"].item() == pytest.approx(0.5 * math.log(4 / 3), rel=1e-6)
    # 0.5 (teacher's objectness) * [(0.5 - 0.75)^2 + (0.5 - 0)^2]
    assert terms["kd_box"].item() == pytest.approx(0.5 * (0.0625 + 0.25), rel=1e-6)


def test_zero_when_the_student_matches_and_pulled_towards_the_teacher() -> None:
    teacher = torch.randn(2, 10, 3, 3)
    same = dense_distill_loss(teacher.clone(), teacher, num_anchors=2)
    assert same["kd_obj"].item() == pytest.approx(0.0, abs=1e-5) and same["kd_box"].item() == 0.0
    student = torch.randn(2, 10, 3, 3, requires_grad=True)
    terms = dense_distill_loss(student, teacher, num_anchors=2)
    assert terms["kd_obj"].item() > 0 and terms["kd_box"].item() > 0
    (terms["kd_obj"] + terms["kd_box"]).backward()
    assert student.grad is not None
    # d KL / d s = (sigmoid(s) - sigmoid(t)) / B on every objectness channel
    obj = slice(4, 10, 5)
    expected = (torch.sigmoid(student[:, obj]) - torch.sigmoid(teacher[:, obj])) / 2
    torch.testing.assert_close(student.grad[:, obj], expected.detach())


def test_heads_of_different_shapes_are_refused() -> None:
    with pytest.raises(ValueError, match="differ"):
        dense_distill_loss(torch.zeros(1, 10, 2, 2), torch.zeros(1, 10, 3, 3), num_anchors=2)


def _train(wider_root: Path, out: Path, cache: Path, *extra: str) -> int:
    argv = [
        "train", "--model", "dupnet-tinier-yolo", "--data-root", str(wider_root), "--img-size", "64",
        "--batch-size", "4", "--out", str(out), "--cache-dir", str(cache), "--workers", "0", "--threads", "1",
        "--no-progress", "--log-every", "1", "--deploy-size", "64", "--epochs", "1", *extra,
    ]  # fmt: skip
    return main(argv)


def test_a_run_with_a_teacher_model_learns_its_maps(
    wider_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cache = tmp_path / "cache"
    assert _train(wider_root, tmp_path / "teacher", cache, "--max-steps", "2", "--seed", "1") == 0
    teacher = str(tmp_path / "teacher" / "last.pt")
    out = tmp_path / "student"
    assert _train(wider_root, out, cache, "--max-steps", "2", "--seed", "2", "--teacher-model", teacher,
                  "--teacher-weight", "2.0") == 0  # fmt: skip
    # The student took the teacher's anchors (its own seed would have fitted others).
    anchors = [ModelConfig.from_dict(load_checkpoint(p)["model_config"]).anchors for p in (teacher, out / "last.pt")]
    assert anchors[0] == anchors[1]
    steps = [r for r in map(json.loads, (out / "log.jsonl").read_text().splitlines()) if r["type"] == "step"]
    assert len(steps) == 2
    for r in steps:
        assert r["kd_obj"] > 0 and r["kd_box"] > 0
        assert r["total"] == pytest.approx(r["box"] + r["obj"] + r["noobj"] + 2.0 * (r["kd_obj"] + r["kd_box"]))
    # Other anchors than the teacher's: one line, before training.
    capsys.readouterr()
    assert _train(wider_root, tmp_path / "x", cache, "--anchors", "preset", "--teacher-model", teacher) == 2
    err = capsys.readouterr().err
    assert "takes the teacher's anchors" in err and err.count("\n") == 1
    # Resuming a run whose anchors are not the teacher's: one line.
    plain = tmp_path / "plain"
    assert _train(wider_root, plain, cache, "--max-steps", "1", "--seed", "3") == 0
    assert _train(wider_root, plain, cache, "--max-steps", "2", "--resume", "--teacher-model", teacher) == 2
    err = capsys.readouterr().err
    assert "does not match the student" in err and err.count("\n") == 1
    # A teacher with 3 anchors per cell: the student's head takes 3 too.
    other = tmp_path / "other"
    assert _train(wider_root, other, cache, "--max-steps", "1", "--num-anchors", "3") == 0
    assert _train(wider_root, tmp_path / "y", cache, "--max-steps", "1", "--teacher-model", str(other / "last.pt")) == 0
    assert len(ModelConfig.from_dict(load_checkpoint(tmp_path / "y" / "last.pt")["model_config"]).anchors) == 3
