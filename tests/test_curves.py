"""`facedet curves`: per-epoch values are read as logged, the table and figure come out, bad logs are one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from facedet.cli import main
from facedet.evaluation.curves import format_table, read_curve


def _write_log(path: Path, ge48: list[float], extra: str = "") -> Path:
    """A log.jsonl as `facedet train` writes it: step lines between epoch lines."""
    lines = []
    for epoch, value in enumerate(ge48, start=1):
        lines.append({"type": "step", "epoch": epoch - 1, "step": epoch * 10 - 5, "total": 9.0})
        lines.append(
            {
                "type": "epoch",
                "epoch": epoch,
                "val_ap50_ge48": value,
                "val_ap50_ge16": value / 2,
                "train_total": 10.0 - epoch,
            }
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n" + extra)
    return path


def test_read_curve_keeps_epoch_lines_and_the_later_of_a_repeated_epoch(tmp_path: Path) -> None:
    log = _write_log(tmp_path / "run" / "log.jsonl", [0.5, 0.7, 0.6])
    # A resume that re-validated epoch 3 logs it again; the later line wins.
    with log.open("a") as f:
        f.write(json.dumps({"type": "epoch", "epoch": 3, "val_ap50_ge48": 0.65}) + "\n")
    curve = read_curve(tmp_path / "run")
    assert curve.label == "run" and curve.epochs == [1, 2, 3]
    assert curve.values["val_ap50_ge48"] == [0.5, 0.7, 0.65]
    assert curve.values["val_ap50_ge16"] == [0.25, 0.35, None]  # not in the repeated line
    assert curve.best("val_ap50_ge48") == (2, 0.7)
    table = format_table([curve])
    assert "| run | 3 | - | 0.650 | 0.700 (2) |" in table


def test_malformed_and_missing_logs_name_the_place(tmp_path: Path) -> None:
    bad = _write_log(tmp_path / "bad.jsonl", [0.5], extra="{not json\n")
    with pytest.raises(ValueError, match=r"bad\.jsonl:3: not a JSON line"):
        read_curve(bad)
    no_epoch = tmp_path / "noepoch.jsonl"
    no_epoch.write_text(json.dumps({"type": "epoch", "epoch": "one"}) + "\n")
    with pytest.raises(ValueError, match=r"noepoch\.jsonl:1: epoch line without"):
        read_curve(no_epoch)
    with pytest.raises(FileNotFoundError, match="no such training log"):
        read_curve(tmp_path / "missing")


def test_cli_prints_the_table_and_writes_the_figure(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = _write_log(tmp_path / "a.jsonl", [0.5, 0.8])
    b = _write_log(tmp_path / "runs" / "b" / "log.jsonl", [0.6])
    out = tmp_path / "plots" / "curves.png"
    assert main(["curves", f"{a}:first", str(b.parent), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| first | 2 | 0.400 | 0.800 | 0.800 (2) |" in printed
    assert "| b | 1 | 0.300 | 0.600 | 0.600 (1) |" in printed
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text(json.dumps({"type": "step", "step": 1}) + "\n")
    assert main(["curves", str(empty), "--no-plot"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no epoch lines yet" in err and "empty.jsonl" in err
    assert main(["curves", str(tmp_path / "nope"), "--no-plot"]) == 2
    assert "no such training log" in capsys.readouterr().err
