"""`facedet train` end to end on the tiny fixture: checkpoint, exact resume, errors, validation AP."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import facedet.training.engine
from facedet.cli import main
from facedet.config import ModelConfig
from facedet.detections import Detections
from facedet.evaluation.wider_ap import wider_ap
from facedet.models import DEFAULT_ANCHORS
from facedet.models.checkpoint import CheckpointError, load_checkpoint, load_model
from facedet.training.config import TrainConfig
from facedet.training.loop import train

MODEL = "dupnet-tinier-yolo"  # the smallest preset: a training step takes milliseconds at 64 px


@pytest.fixture(autouse=True)
def _restore_torch_threads() -> Iterator[None]:
    # train() sets torch's thread count for the whole process; later tests keep the default.
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def _train(wider_root: Path, out: Path, cache: Path, *extra: str) -> int:
    """One `facedet train` call on the fixture: 8 images, batches of 4 (2 steps per epoch)."""
    argv = [
        "train", "--model", MODEL, "--data-root", str(wider_root), "--img-size", "64", "--batch-size", "4",
        "--out", str(out), "--cache-dir", str(cache), "--workers", "0", "--threads", "1", "--no-progress",
        "--log-every", "1", "--deploy-size", "64", *extra,
    ]  # fmt: skip
    return main(argv)


def test_two_iterations_write_a_self_describing_checkpoint(wider_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert _train(wider_root, out, tmp_path / "cache", "--epochs", "3", "--max-steps", "2") == 0
    data = load_checkpoint(out / "last.pt")
    assert data["step"] == 2 and data["epoch"] == 1 and data["iter_in_epoch"] == 0
    # The first epoch ended at step 2: it was validated (through facedet.evaluation.wider_ap).
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["type"] for r in records] == ["step", "step", "epoch"]
    assert set(data["metrics"]) == {"ap50", "ap50_ge16", "ap50_ge48"}
    assert all(0.0 <= records[-1][f"val_{k}"] <= 1.0 for k in ("ap50", "ap50_ge16"))
    assert all(math.isfinite(r["total"]) for r in records[:2])
    assert (out / "best.pt").is_file()

    # The checkpoint alone rebuilds the model (k-means anchors included: not the preset's).
    model, config, raw = load_model(out / "last.pt")
    assert config == ModelConfig.from_dict(json.loads((out / "model_config.json").read_text()))
    assert config.name == MODEL and config.img_size == 64 and config.anchors != DEFAULT_ANCHORS
    assert not model.training
    for key, tensor in model.state_dict().items():
        torch.testing.assert_close(tensor, raw["model"][key], rtol=0, atol=0)
    with torch.no_grad():
        out_map = model(torch.randint(0, 256, (1, 3, 64, 64)).float())
    assert out_map.shape == (1, 25, 2, 2) and torch.isfinite(out_map).all()


def test_anchors_init_keeps_the_init_checkpoints_anchors(wider_root: Path, tmp_path: Path) -> None:
    # A first run fits k-means anchors; a fine-tune from it keeps them with --anchors init and
    # re-fits them (another seed, other anchors) without.
    first = tmp_path / "first"
    assert _train(wider_root, first, tmp_path / "cache", "--epochs", "1", "--max-steps", "1", "--seed", "1") == 0
    fitted = ModelConfig.from_dict(load_checkpoint(first / "last.pt")["model_config"]).anchors
    assert fitted != DEFAULT_ANCHORS
    for anchors, seed, out in (("init", "2", "kept"), ("auto", "2", "refit")):
        extra = ("--epochs", "1", "--max-steps", "1", "--seed", seed, "--anchors", anchors)
        assert _train(wider_root, tmp_path / out, tmp_path / "cache", *extra, "--init", str(first / "last.pt")) == 0
    kept = ModelConfig.from_dict(load_checkpoint(tmp_path / "kept" / "last.pt")["model_config"]).anchors
    refit = ModelConfig.from_dict(load_checkpoint(tmp_path / "refit" / "last.pt")["model_config"]).anchors
    assert kept == fitted and refit != fitted


def test_val_seed_fixes_the_validation_subset_across_run_seeds(wider_root: Path, tmp_path: Path) -> None:
    from facedet.training.data import load_split
    from facedet.training.distributed import Dist

    def val_images(seed: int, val_seed: int | None) -> list[str]:
        cfg = TrainConfig(data_root=str(wider_root), seed=seed, val_seed=val_seed, cache_dir=str(tmp_path))
        samples, _ = load_split(cfg, "val", 2, Dist("cpu"), collective=False)  # 2 of the 4 val images
        return [s.path.name for s in samples]

    fixed = {tuple(val_images(seed, val_seed=3)) for seed in range(6)}
    by_seed = {tuple(val_images(seed, val_seed=None)) for seed in range(6)}
    assert fixed == {tuple(val_images(3, None))} and len(by_seed) > 1


def test_resume_continues_exactly(wider_root: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    common = ("--epochs", "2", "--anchors", "preset")
    # 2 steps (the end of epoch 1, validated), then resume to 4 ...
    assert _train(wider_root, tmp_path / "split", cache, *common, "--max-steps", "2") == 0
    at_step_2 = load_checkpoint(tmp_path / "split" / "last.pt")
    assert at_step_2["step"] == 2
    assert _train(wider_root, tmp_path / "split", cache, *common, "--max-steps", "4", "--resume") == 0
    # ... against 4 steps in one go.
    assert _train(wider_root, tmp_path / "straight", cache, *common, "--max-steps", "4") == 0
    resumed, straight = (
        load_checkpoint(tmp_path / "split" / "last.pt"),
        load_checkpoint(tmp_path / "straight" / "last.pt"),
    )
    assert resumed["step"] == straight["step"] == 4 and resumed["epoch"] == straight["epoch"] == 2
    for key, tensor in straight["model"].items():
        torch.testing.assert_close(resumed["model"][key], tensor, rtol=0, atol=0, msg=f"{key} differs")
    # Steps 3 and 4 really trained (the comparison is not between two untouched models).
    assert not torch.equal(resumed["model"]["head.weight"], at_step_2["model"]["head.weight"])
    for index, moments in straight["optimizer"]["state"].items():
        for name, value in moments.items():
            torch.testing.assert_close(resumed["optimizer"]["state"][index][name], value, rtol=0, atol=0)
    # Both logs hold the same step losses (the resumed run appended steps 3 and 4 to its log).
    losses = {}
    for run in ("split", "straight"):
        lines = (tmp_path / run / "log.jsonl").read_text().splitlines()
        losses[run] = [(r["step"], r["total"]) for r in map(json.loads, lines) if r["type"] == "step"]
    assert losses["split"] == losses["straight"] and [s for s, _ in losses["straight"]] == [1, 2, 3, 4]


def test_resume_after_a_lost_checkpoint_logs_each_step_once(wider_root: Path, tmp_path: Path) -> None:
    # A run stopped after logging steps past its last checkpoint (here: steps 3-4 and epoch 2, then
    # last.pt put back to step 2) resumes from step 2 and must not log steps 3-4 and epoch 2 twice.
    out, cache = tmp_path / "run", tmp_path / "cache"
    common = ("--epochs", "2", "--anchors", "preset")
    assert _train(wider_root, out, cache, *common, "--max-steps", "2") == 0
    at_step_2 = (out / "last.pt").read_bytes()
    assert _train(wider_root, out, cache, *common, "--resume") == 0
    (out / "last.pt").write_bytes(at_step_2)
    with (out / "log.jsonl").open("a") as log:
        log.write('{"type": "step", "epoch": 1, "it')  # a line cut short by the stop
    assert _train(wider_root, out, cache, *common, "--resume") == 0
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["type"] == "step"] == [1, 2, 3, 4]
    assert [r["epoch"] for r in records if r["type"] == "epoch"] == [1, 2]


def test_truncated_checkpoint_raises(wider_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    assert _train(wider_root, out, tmp_path / "cache", "--epochs", "1", "--max-steps", "1", "--anchors", "preset") == 0
    blob = (out / "last.pt").read_bytes()
    (out / "last.pt").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_model(out / "last.pt")
    # --resume does not silently start over from a damaged checkpoint: one line, exit code 2.
    capsys.readouterr()
    assert _train(wider_root, out, tmp_path / "cache", "--epochs", "1", "--resume") == 2
    err = capsys.readouterr().err
    assert "last.pt" in err and "truncated" in err and err.count("\n") == 1
    assert "best.pt" not in err  # no best.pt yet (one step, no validation): nothing to offer
    # With an intact best.pt beside it, the message says how to continue from there.
    assert _train(wider_root, tmp_path / "run2", tmp_path / "cache", "--epochs", "1", "--anchors", "preset") == 0
    (tmp_path / "run2" / "last.pt").write_bytes(b"PK\x03\x04 truncated")
    capsys.readouterr()
    assert _train(wider_root, tmp_path / "run2", tmp_path / "cache", "--epochs", "2", "--resume") == 2
    err = capsys.readouterr().err
    assert "best.pt" in err and "--init" in err and err.count("\n") == 1
    (out / "empty.pt").write_bytes(b"")
    with pytest.raises(CheckpointError):
        load_checkpoint(out / "empty.pt")
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_checkpoint(out / "absent.pt")


def test_non_finite_loss_stops_with_the_offending_terms(
    wider_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real_loss: Callable[..., dict[str, torch.Tensor]] = facedet.training.engine.region_loss
    calls = []

    def loss_with_nan_box_at_step_2(*args: Any, **kwargs: Any) -> dict[str, torch.Tensor]:
        terms = real_loss(*args, **kwargs)
        calls.append(1)
        if len(calls) == 2:  # the second step's box term becomes NaN
            terms["box"] = terms["box"] * float("nan")
            terms["total"] = terms["box"] + terms["obj"] + terms["noobj"]
        return terms

    monkeypatch.setattr(facedet.training.engine, "region_loss", loss_with_nan_box_at_step_2)
    out = tmp_path / "run"
    code = _train(
        wider_root, out, tmp_path / "cache", "--epochs", "2", "--anchors", "preset", "--checkpoint-every", "1"
    )
    assert code == 1 and len(calls) == 2
    message = capsys.readouterr().err
    assert "training stopped: non-finite loss at epoch 1, iteration 2 (step 1)" in message
    assert "offending terms {'box': nan, 'total': nan}" in message
    # Training stopped before the bad step changed anything: the last checkpoint is step 1's.
    assert load_checkpoint(out / "last.pt")["step"] == 1
    with pytest.raises(facedet.training.engine.NonFiniteLossError, match="'box': nan"):
        calls.clear()
        train(
            TrainConfig(
                model=MODEL, data_root=str(wider_root), out=str(tmp_path / "api"), img_size=64, epochs=1,
                batch_size=4, workers=0, threads=1, anchors="preset", cache_dir=str(tmp_path / "cache"),
                progress=False,
            )
        )  # fmt: skip


def test_wider_ap_min_size_gives_the_training_log_ap50_ge16() -> None:
    # One large face found, one 10 px face missed: AP50 counts the miss, AP50 over faces >= 16 px does not.
    ground_truth = [(np.array([[10, 10, 60, 70], [100, 100, 110, 110]], np.float64), np.array([False, False]))]
    found = [Detections(np.array([[10, 10, 60, 70]], np.float32), np.array([0.9], np.float32))]
    all_faces = wider_ap(ground_truth, found)
    large = wider_ap(ground_truth, found, min_size=16.0)
    assert all_faces["AP50"] == pytest.approx(0.5, abs=0.01) and all_faces["faces"] == 2
    assert large["AP50"] == pytest.approx(1.0) and large["faces"] == 1 and large["ignored"] == 1
    # A detection on the small face is neither a true nor a false positive once it is ignored.
    both = [
        Detections(np.array([[100, 100, 110, 110], [10, 10, 60, 70]], np.float32), np.array([0.95, 0.9], np.float32))
    ]
    assert wider_ap(ground_truth, both, min_size=16.0)["AP50"] == pytest.approx(1.0)


def test_bad_arguments_fail_in_one_line_before_any_slow_work(
    wider_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cache = tmp_path / "cache"
    # 8 fixture images cannot fill a batch of 32: refused before the image cache is built.
    assert _train(wider_root, tmp_path / "a", cache, "--batch-size", "32") == 2
    err = capsys.readouterr().err
    assert "fewer than one batch of 32" in err and "--batch-size 8" in err and err.count("\n") == 1
    assert not cache.exists()
    assert _train(wider_root, tmp_path / "b", cache, "--img-size", "100") == 2
    assert "multiple of 32" in capsys.readouterr().err
    assert _train(tmp_path / "nowhere", tmp_path / "c", cache) == 2
    assert "annotation file not found" in capsys.readouterr().err


def test_train_flags_are_the_config_fields() -> None:
    """`facedet train` has one flag per TrainConfig field, with the field's default."""
    import argparse
    import dataclasses

    from facedet.commands.train import add_arguments, config_from_args

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--model", "tiny-yolo", "--out", "runs/x"])
    assert config_from_args(args) == TrainConfig(model="tiny-yolo", out="runs/x")
    assert {f.name for f in dataclasses.fields(TrainConfig)} <= set(vars(args))
    args = parser.parse_args(["--model", "tiny-yolo", "--out", "o", "--multi-anchor-iou", "-1", "--no-progress"])
    cfg = config_from_args(args)
    assert cfg.multi_anchor_iou is None and cfg.progress is False
    with pytest.raises(SystemExit):
        parser.parse_args(["--model", "no-such-model", "--out", "o"])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"anchors": "kmeans"}, "anchors must be one of"),
        ({"model": "yolo9000"}, "model must be one of"),
        ({"img_size": 100}, "multiple of 32"),
        ({"deploy_size": 0}, "multiple of 32"),
        ({"face_min": 50.0, "face_max": 20.0}, "face_min <= face_max"),
        ({"max_images": 8, "batch_size": 32}, "fewer than one batch of 32; use --batch-size 8"),
        ({"ema_decay": 1.0}, "ema_decay"),
        ({"gray": 1.5}, "gray must be a probability"),
        ({"select_metric": "ap75"}, "select_metric must be one of"),
        ({"anchors": "init"}, "give --init"),
        ({"teacher_model": "t.pt", "anchors": "init", "init": "t.pt"}, "takes the teacher's anchors"),
        ({"teacher_weight": -1.0}, "teacher_weight must be >= 0"),
    ],
)
def test_train_config_checks_itself(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TrainConfig(**change)


def test_teacher_detections_join_training(wider_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from facedet.data.cache import ImageCache
    from facedet.data.teacher import TeacherBoxes

    cache_dir = tmp_path / "cache"
    assert _train(wider_root, tmp_path / "plain", cache_dir, "--epochs", "1", "--max-steps", "1") == 0
    # A teacher cache beside the image cache (as `--teacher NAME` writes it on first use): one face
    # the annotation lacks in every image, in the top-right corner.
    (data_file,) = cache_dir.glob("wider-train-*.u8")
    images = len(ImageCache(data_file, json.loads(data_file.with_suffix(".json").read_text()).copy()))
    teacher = TeacherBoxes(
        np.arange(images + 1, dtype=np.int64),
        np.tile(np.array([[60, 2, 90, 40]], np.float32), (images, 1)),
        np.full(images, 0.9, np.float32),
    )
    teacher.save(data_file.with_name(f"{data_file.stem}.teacher-fake.npz"))
    out = tmp_path / "distilled"
    assert _train(wider_root, out, cache_dir, "--epochs", "1", "--max-steps", "2", "--teacher", "fake") == 0
    assert load_checkpoint(out / "last.pt")["train_config"]["teacher"] == "fake"
    # A teacher with no cache and no such peer: one line, before training.
    capsys.readouterr()
    assert _train(wider_root, tmp_path / "x", cache_dir, "--max-steps", "1", "--teacher", "nobody") == 2
    err = capsys.readouterr().err
    assert "unknown peer 'nobody'" in err and err.count("\n") == 1


def _first_loss(out: Path) -> float:
    first = json.loads((out / "log.jsonl").read_text().splitlines()[0])
    assert first["step"] == 1
    return float(first["total"])


def test_channels_last_and_bf16_train_the_same_model(wider_root: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    common = ("--epochs", "1", "--max-steps", "2", "--anchors", "preset")
    runs = {"plain": (), "nhwc": ("--channels-last",), "bf16": ("--channels-last", "--bf16")}
    for name, flags in runs.items():
        assert _train(wider_root, tmp_path / name, cache, *common, *flags) == 0
    plain, nhwc, bf16 = (_first_loss(tmp_path / name) for name in runs)
    # NHWC changes the memory layout only: the same loss up to float summation order.
    assert nhwc == pytest.approx(plain, rel=1e-4)
    # bfloat16 (8-bit mantissa) really ran, and stays close to the float32 loss.
    assert bf16 != plain and bf16 == pytest.approx(plain, rel=0.1)
    # Checkpoints of an NHWC run load into the ordinary (NCHW) model and run.
    model, config, _ = load_model(tmp_path / "bf16" / "last.pt")
    assert load_checkpoint(tmp_path / "bf16" / "last.pt")["train_config"]["bf16"] is True
    with torch.no_grad():
        out_map = model(torch.randint(0, 256, (1, 3, 64, 64)).float())
    assert out_map.shape == (1, 25, 2, 2) and torch.isfinite(out_map).all()


def test_resume_mid_epoch_leaves_the_same_random_state(wider_root: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    common = ("--epochs", "2", "--anchors", "preset", "--workers", "1")
    # Stop at step 3, inside epoch 2 (2 steps per epoch), and resume: one more data loader is built
    # than in the uninterrupted run, and it must not draw from torch's global random state.
    assert _train(wider_root, tmp_path / "split", cache, *common, "--max-steps", "3") == 0
    assert _train(wider_root, tmp_path / "split", cache, *common, "--resume") == 0
    assert _train(wider_root, tmp_path / "straight", cache, *common) == 0
    resumed, straight = (load_checkpoint(tmp_path / run / "last.pt") for run in ("split", "straight"))
    assert resumed["step"] == straight["step"] == 4
    assert torch.equal(resumed["rng"]["torch"], straight["rng"]["torch"])
    for key, tensor in straight["train_model"].items():
        torch.testing.assert_close(resumed["train_model"][key], tensor, rtol=0, atol=0, msg=f"{key} differs")


def test_runs_with_other_seeds_keep_each_others_caches(wider_root: Path, tmp_path: Path) -> None:
    from facedet.training.data import load_split
    from facedet.training.distributed import Dist

    # Two runs side by side validating on seeded subsets: the second must not evict the first's
    # cache (a run crashed at its first validation when another run with another seed evicted it).
    caches = [
        load_split(TrainConfig(data_root=str(wider_root), cache_dir=str(tmp_path), seed=seed), "val", 2, Dist("cpu"))[1]
        for seed in (1, 2, 3)
    ]
    assert all(cache.data_file.is_file() for cache in caches)
    assert len({cache.data_file for cache in caches}) == 3
    assert all(cache.get(0).ndim == 3 for cache in caches)
