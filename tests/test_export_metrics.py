"""`facedet export --fddb-metrics`: FDDB figures from an eval metrics.json travel into the model file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from facedet.commands.export import fddb_figures


def _metrics(tmp_path: Path) -> Path:
    overall = {"disc": {"100": 0.61, "1000": 0.8765432}, "cont": {"100": 0.4, "1000": 0.55}}
    path = tmp_path / "metrics.json"
    path.write_text(json.dumps({"models": {"dupnet": {"overall": overall}}}))
    return path


def test_figures_are_flattened_and_rounded(tmp_path: Path) -> None:
    figures = fddb_figures(f"{_metrics(tmp_path)}:dupnet")
    assert figures == {
        "fddb_disc_tpr_at_100fp": 0.61,
        "fddb_disc_tpr_at_1000fp": 0.8765,
        "fddb_cont_tpr_at_100fp": 0.4,
        "fddb_cont_tpr_at_1000fp": 0.55,
    }


def test_unknown_label_and_bad_spec_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no model labelled 'ifq'.*dupnet"):
        fddb_figures(f"{_metrics(tmp_path)}:ifq")
    with pytest.raises(ValueError, match="METRICS_JSON:LABEL"):
        fddb_figures("metrics.json")
