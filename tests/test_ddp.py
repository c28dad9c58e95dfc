"""DDP: `torchrun --nproc_per_node 2 -m facedet.cli train` with two CPU (gloo) processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from facedet.models.checkpoint import load_checkpoint, load_model


def test_two_gloo_processes_train_and_rank0_writes(wider_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",  # = torchrun
        "-m", "facedet.cli", "train", "--model", "dupnet-tinier-yolo", "--data-root", str(wider_root),
        "--img-size", "64", "--batch-size", "2", "--epochs", "1", "--max-steps", "2", "--anchors", "preset",
        "--out", str(out), "--cache-dir", str(tmp_path / "cache"), "--workers", "0", "--threads", "1",
        "--no-progress", "--log-every", "1", "--device", "cpu",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    # Only rank 0 reports, validates and writes. 8 images over 2 ranks in batches of 2: the two
    # steps are one whole epoch, validated on rank 0.
    assert result.stdout.count("done: ") == 1 and "step 2" in result.stdout
    data = load_checkpoint(out / "last.pt")
    assert data["step"] == 2 and data["epoch"] == 1 and data["iter_in_epoch"] == 0
    assert set(data["metrics"]) == {"ap50", "ap50_ge16", "ap50_ge48"}
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [(r["type"], r["step"]) for r in records] == [("step", 1), ("step", 2), ("epoch", 2)]  # not one per rank
    assert all(r["img_per_s"] > 0 for r in records[:2])
    model, config, _ = load_model(out / "last.pt")
    with torch.no_grad():
        assert model(torch.zeros(1, 3, 64, 64)).shape == (1, config.num_anchors * 5, 2, 2)
    assert sorted(p.name for p in out.iterdir()) == [
        "best.pt", "last.pt", "log.jsonl", "model_config.json", "train_config.json"
    ]  # fmt: skip
