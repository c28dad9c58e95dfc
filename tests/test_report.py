"""The FDDB report renders (Markdown + self-contained HTML), and `facedet eval fddb` writes it end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from facedet.cli import main
from facedet.commands.eval import split_label
from facedet.data.fddb import load_fddb
from facedet.data.fddb_format import write_detections
from facedet.detections import Detections
from facedet.evaluation.fddb_eval import evaluate_detections
from facedet.evaluation.report import PUBLISHED, ModelEntry, write_report
from facedet.evaluation.wider_ap import wider_ap

FIXTURE = Path(__file__).resolve().parent / "data" / "fddb"


def _detections(shift: float) -> dict[str, np.ndarray]:
    """Rectangles around each face (shifted by ``shift`` pixels) plus one stray box per image."""
    fddb = load_fddb(FIXTURE)
    out = {}
    for im in fddb.images:
        rows = [[cx - a * 0.7 + shift, cy - a, a * 1.4, a * 2, 0.9] for a, _, _, cx, cy in im.ellipses]
        rows.append([5.0, 5.0, 10.0, 10.0, 0.3])
        out[im.name] = np.asarray(rows, np.float64)
    return out


def test_report_renders_every_model(tmp_path: Path) -> None:
    fddb = load_fddb(FIXTURE)
    entries = [
        ModelEntry(
            "good-model",
            "test",
            evaluate_detections(fddb, _detections(0.0)),
            _detections(0.0),
            stored_bytes=36_900,
            macs=12_345_678,
            ms_per_image=3.2,
            img_size=416,
        ),
        ModelEntry("shifted-model", "test", evaluate_detections(fddb, _detections(15.0)), _detections(15.0)),
    ]
    md, html = write_report(tmp_path, entries, fddb, num_samples=2)
    assert md.exists() and html.exists()
    for png in ("roc_discrete.png", "roc_continuous.png", "samples.png"):
        assert (tmp_path / png).read_bytes()[:4] == b"\x89PNG"
    page = html.read_text()
    assert page.count("src='data:image/png;base64,") == 3 and "roc_discrete.png" not in page  # self-contained
    text = md.read_text()
    for doc in (page, text):
        assert "good-model" in doc and "shifted-model" in doc
        assert "published, not measured" in doc and all(p.model in doc for p in PUBLISHED)
        assert "3 images with 3 faces scored" in doc and "1 images (1 faces)" in doc
    assert "36,900" in text and "12,345,678 (416)" in text
    # Cosmetics a reader meets: no literal Markdown in the HTML, no citation of a file outside the
    # repository, the table scrolls instead of overflowing, ground truth has a colour of its own.
    assert "`" not in page and "<code>" in page
    assert "REFERENCE.md" not in page and "REFERENCE.md" not in text
    assert "<div class='wide'><table>" in page
    from facedet.evaluation import report

    assert "#00c800" not in report._COLORS and report.GROUND_TRUTH_BGR == (0, 200, 0)
    xs = report.published_marker_x(len(PUBLISHED), 2000)
    assert len(set(xs)) == len(PUBLISHED) and abs(sum(xs) / len(xs) - 1000) < 1e-9


def test_default_model_is_labelled_by_its_name(tmp_path: Path) -> None:
    from facedet.cli import main

    out = tmp_path / "report"
    default = Path(__file__).resolve().parent.parent / "weights" / "default.fdet"
    args = ["eval", "fddb", "--fddb-root", str(FIXTURE), "--model", str(default), "--max-images", "1"]
    assert main([*args, "--out", str(out), "--no-report"]) == 0
    models = json.loads((out / "metrics.json").read_text())["models"]
    assert list(models) == ["ifq-tinier-yolo"]  # weights/default.fdet is a copy of IFQ today


def test_split_label() -> None:
    assert split_label("runs/a/model.fdet:tiny") == (Path("runs/a/model.fdet"), "tiny")
    assert split_label("runs/a/model.fdet") == (Path("runs/a/model.fdet"), "model")
    assert split_label("C:/x.txt") == (Path("C:/x.txt"), "x")


def test_cli_scores_detection_files_and_writes_report(tmp_path: Path) -> None:
    fddb = load_fddb(FIXTURE)
    dets_a = tmp_path / "a.txt"
    write_detections(dets_a, [(im.name, _detections(0.0)[im.name]) for im in fddb.images])
    dets_b = tmp_path / "b.txt"
    write_detections(dets_b, [(im.name, _detections(15.0)[im.name]) for im in fddb.images])
    out = tmp_path / "out"
    code = main(
        [
            "eval",
            "fddb",
            "--fddb-root",
            str(FIXTURE),
            "--out",
            str(out),
            "--detections",
            f"{dets_a}:mine",
            "--detections",
            str(dets_b),
        ]
    )
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["models"]) == {"mine", "b"}
    assert metrics["images"] == 3 and metrics["missing_images"] == 1 and metrics["faces"] == 3
    assert set(metrics["models"]["mine"]["overall"]["disc"]) == {"100", "500", "1000", "2000"}
    for label in ("mine", "b"):
        assert (out / label / "DiscROC.txt").exists() and (out / label / "ContROC.txt").exists()
    assert (out / "report.html").exists() and (out / "report.md").exists()


def test_cli_rejects_unknown_peer(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["eval", "fddb", "--fddb-root", str(FIXTURE), "--out", str(tmp_path), "--peer", "nope", "--no-report"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "choose from: haar" in err and err.count("\n") == 1


def test_wider_ap_perfect_and_ignored_faces() -> None:
    gt = [
        (np.array([[10, 10, 50, 50], [100, 100, 140, 150], [200, 10, 210, 20]], float), np.array([False, False, True]))
    ]
    perfect = [
        Detections(np.array([[10, 10, 50, 50], [100, 100, 140, 150]], np.float32), np.array([0.9, 0.8], np.float32))
    ]
    m = wider_ap(gt, perfect)
    assert m["AP50"] == pytest.approx(1.0) and m["AP50:95"] == pytest.approx(1.0) and m["ignored"] == 1
    # A detection on the ignored face is neither TP nor FP.
    on_ignored = [
        Detections(
            np.array([[200, 10, 210, 20], [10, 10, 50, 50], [100, 100, 140, 150]], np.float32),
            np.array([0.95, 0.9, 0.8], np.float32),
        )
    ]
    assert wider_ap(gt, on_ignored)["AP50"] == pytest.approx(1.0)
    assert wider_ap(gt, [Detections.empty()])["AP50"] == 0.0
