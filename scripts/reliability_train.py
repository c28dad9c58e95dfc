"""Kill-and-resume of ``facedet train`` (issue 14): a run SIGKILLed mid-epoch must resume exactly.

On the tiny WIDER fixture (``facedet.testing.make_wider_tree``: 8 train images, batches of 4, so
2 steps per epoch) and ``dupnet-tinier-yolo`` at 64 px, with ``--checkpoint-every 1``, one thread
and no loader workers, three ``facedet train`` subprocesses run in turn:

1. ``straight``: ``--epochs`` epochs uninterrupted (its log also gives the steps per epoch);
2. ``killed``: the same command into another folder, watched through ``last.pt`` (polled every
   millisecond). At each new checkpoint the process is frozen (SIGSTOP) and the checkpoint read;
   the first one written mid-epoch (0 < iter_in_epoch < steps per epoch) after the first epoch
   gets SIGKILL; any other is let go on (SIGCONT). Freezing first means the kill lands where the
   process stood just after writing that checkpoint, whatever the polling delay; steps it logged
   after the checkpoint (``killed_at_step - resumed_from_step``) are redone on resume;
3. ``resumed``: the same command with ``--resume`` in the killed run's folder, to completion.

The two final ``last.pt`` are compared entry by entry (``load_checkpoint``, i.e.
``torch.load(weights_only=True)``): the model (the EMA weights), ``train_model``, the optimizer
state, the RNG states, the run counters and the validation metrics; only ``train_config.out`` and
``train_config.resume`` may differ. The ``log.jsonl`` records are compared by (type, step), every
occurrence in the resumed folder (a redone step is logged twice) against the straight run's,
timing fields aside.

Result (``kill_and_resume()``), with ``identical`` true when every tensor, value and log record
agree exactly::

    {"model", "epochs", "steps", "steps_per_epoch", "killed": bool, "killed_at_step",
     "killed_checkpoint": {"step", "epoch", "iter_in_epoch"}, "resumed_from_step",
     "checkpoints_seen_before_kill", "stray_files_after_kill", "identical": bool,
     "max_abs_diff": {"model", "train_model", "optimizer"}, "checkpoint_mismatches": [path, ...],
     "log": {"identical", "max_abs_diff", "repeated_steps", "mismatches"}, "seconds": {run: s}}
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # this checkout's facedet, as the subprocesses get (PYTHONPATH)
# `facedet ...` from this checkout, whatever facedet the interpreter has installed.
FACEDET_CLI = [sys.executable, "-c", "import sys; from facedet.cli import main; sys.exit(main(sys.argv[1:]))"]
MODEL = "dupnet-tinier-yolo"
TIMING_KEYS = {"img_per_s", "time"}  # log fields that differ between identical runs
RUN_SPECIFIC = {("train_config", "out"), ("train_config", "resume")}  # checkpoint entries that may differ


def train_command(data_root: Path, out: Path, cache: Path, epochs: int) -> list[str]:
    args = [
        "train", "--model", MODEL, "--data-root", str(data_root), "--out", str(out), "--cache-dir", str(cache),
        "--epochs", str(epochs), "--img-size", "64", "--deploy-size", "64", "--batch-size", "4",
        "--workers", "0", "--threads", "1", "--checkpoint-every", "1", "--log-every", "1", "--no-progress",
    ]  # fmt: skip
    return [*FACEDET_CLI, *args]


def start(cmd: list[str], log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    with log.open("ab") as out:
        return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)


def run_to_end(cmd: list[str], log: Path, timeout: float) -> float:
    """Run ``cmd`` to completion; its wall time (s). A failure raises with the log's tail."""
    began = time.monotonic()
    process = start(cmd, log)
    try:
        code = process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise RuntimeError(f"training did not finish in {timeout:.0f} s: {log}") from None
    if code != 0:
        raise RuntimeError(f"training exited with {code}: {log.read_text()[-2000:]}")
    return time.monotonic() - began


def read_log(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def checkpoint_version(path: Path) -> tuple[int, int, int] | None:
    """(inode, mtime ns, size) of ``path``: each atomic rewrite changes it; None when absent."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return stat.st_ino, stat.st_mtime_ns, stat.st_size


def run_and_kill(cmd: list[str], out: Path, log: Path, steps_per_epoch: int, timeout: float) -> dict[str, Any]:
    """Start ``cmd``; SIGKILL it right after its first mid-epoch checkpoint past the first epoch."""
    from facedet.models.checkpoint import CheckpointError, load_checkpoint

    began = time.monotonic()
    process = start(cmd, log)
    last, seen, killed = None, 0, None
    try:
        while process.poll() is None and time.monotonic() - began < timeout:
            version = checkpoint_version(out / "last.pt")
            if version is None or version == last:
                time.sleep(0.001)
                continue
            os.kill(process.pid, signal.SIGSTOP)  # freeze it where it stands, then look
            last, seen = checkpoint_version(out / "last.pt"), seen + 1
            try:
                data = load_checkpoint(out / "last.pt")
            except CheckpointError as exc:  # an atomic write never leaves a partial file: report it
                killed = {"unreadable_checkpoint": str(exc)}
                os.kill(process.pid, signal.SIGKILL)
                break
            position = {k: int(data[k]) for k in ("step", "epoch", "iter_in_epoch")}
            if position["epoch"] >= 1 and 0 < position["iter_in_epoch"] < steps_per_epoch:
                os.kill(process.pid, signal.SIGKILL)
                killed = position
                break
            os.kill(process.pid, signal.SIGCONT)
    finally:
        if process.poll() is None and killed is None:
            process.kill()  # past the timeout
        process.wait()
    steps = [r["step"] for r in read_log(out / "log.jsonl") if r["type"] == "step"]
    return {
        "killed": killed is not None and "step" in killed,
        "killed_at_step": max(steps, default=0),
        "killed_checkpoint": killed,
        "checkpoints_seen_before_kill": seen,
        "stray_files_after_kill": sorted(p.name for p in out.iterdir() if p.name.startswith(".")),
        "seconds": time.monotonic() - began,
    }


def leaf_diff(a: Any, b: Any) -> float:
    """|a - b| of two tensors (largest element), numbers or other values; inf when their shapes,
    types or (for non-floats) values differ."""
    import numpy as np
    import torch

    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        if a.shape != b.shape or a.dtype != b.dtype:
            return math.inf
        if not a.dtype.is_floating_point:
            return 0.0 if torch.equal(a, b) else math.inf
        return float((a.double() - b.double()).abs().max()) if a.numel() else 0.0
    if isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
        return 0.0 if np.array_equal(a, b) else math.inf
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in (a, b)):
        return 0.0 if a == b or (math.isnan(a) and math.isnan(b)) else abs(a - b)
    return 0.0 if type(a) is type(b) and a == b else math.inf


def diff_values(a: Any, b: Any, path: tuple[Any, ...], mismatches: list[str]) -> float:
    """Largest leaf difference of two nested dicts/lists/tuples; the path of every unequal leaf
    (or of a key found on one side only) goes into ``mismatches``."""
    if path in RUN_SPECIFIC:
        return 0.0
    if isinstance(a, dict) and isinstance(b, dict):
        worst = 0.0
        for key in sorted(set(a) | set(b), key=str):
            if key in a and key in b:
                worst = max(worst, diff_values(a[key], b[key], (*path, key), mismatches))
            else:
                worst = math.inf
                mismatches.append("/".join(map(str, (*path, key))) + " (on one side only)")
        return worst
    if isinstance(a, list | tuple) and isinstance(b, list | tuple) and len(a) == len(b):
        pairs = enumerate(zip(a, b, strict=True))
        return max((diff_values(x, y, (*path, i), mismatches) for i, (x, y) in pairs), default=0.0)
    worst = leaf_diff(a, b)
    if worst != 0.0:
        mismatches.append("/".join(map(str, path)))
    return worst


def compare_checkpoints(resumed: Path, straight: Path) -> dict[str, Any]:
    from facedet.models.checkpoint import load_checkpoint

    a, b = load_checkpoint(resumed), load_checkpoint(straight)
    mismatches: list[str] = []
    diff_values(a, b, (), mismatches)
    section = {k: diff_values(a.get(k), b.get(k), (k,), []) for k in ("model", "train_model", "optimizer")}
    return {"mismatches": mismatches, "max_abs_diff": section}


def compare_logs(resumed: Path, straight: Path) -> dict[str, Any]:
    """Each (type, step) record of the resumed folder against the straight run's, timing aside."""

    def keyed(path: Path) -> dict[tuple[str, int], list[dict[str, Any]]]:
        groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
        for record in read_log(path):
            plain = {k: v for k, v in record.items() if k not in TIMING_KEYS}
            groups.setdefault((record["type"], record["step"]), []).append(plain)
        return groups

    a, b = keyed(resumed), keyed(straight)
    mismatches, worst = [], 0.0
    for key in sorted(set(a) | set(b)):
        if key not in a or key not in b:
            mismatches.append(f"{key[0]} {key[1]}: only in the {'resumed' if key in a else 'straight'} log")
            continue
        for record in a[key]:  # a step redone after the kill is logged twice: both must match
            errors: list[str] = []
            worst = max(worst, diff_values(record, b[key][0], (), errors))
            if errors:
                mismatches.append(f"{key[0]} {key[1]}: " + ", ".join(errors))
    return {
        "identical": not mismatches,
        "max_abs_diff": worst,
        "repeated_steps": sorted(step for (kind, step), group in a.items() if kind == "step" and len(group) > 1),
        "mismatches": mismatches[:20],
    }


def kill_and_resume(epochs: int = 3, timeout: float = 900.0) -> dict[str, Any]:
    """Run the three trainings (module docstring) in a temporary folder; the comparison."""
    from facedet.models.checkpoint import load_checkpoint
    from facedet.testing import make_wider_tree

    with tempfile.TemporaryDirectory(prefix="facedet-killresume-") as tmp_name:
        tmp = Path(tmp_name)
        data, cache = make_wider_tree(tmp / "wider"), tmp / "cache"
        straight, split = tmp / "straight", tmp / "split"
        seconds = {"straight": run_to_end(train_command(data, straight, cache, epochs), tmp / "straight.log", timeout)}
        records = read_log(straight / "log.jsonl")
        steps_per_epoch = next(r["step"] for r in records if r["type"] == "epoch")
        command = train_command(data, split, cache, epochs)
        kill = run_and_kill(command, split, tmp / "split.log", steps_per_epoch, timeout)
        seconds["killed"] = kill.pop("seconds")
        resumed_from = int(load_checkpoint(split / "last.pt")["step"])
        seconds["resumed"] = run_to_end([*command, "--resume"], tmp / "split.log", timeout)
        checkpoints = compare_checkpoints(split / "last.pt", straight / "last.pt")
        logs = compare_logs(split / "log.jsonl", straight / "log.jsonl")
    return {
        "model": MODEL,
        "epochs": epochs,
        "steps": max(r["step"] for r in records),
        "steps_per_epoch": steps_per_epoch,
        **kill,
        "resumed_from_step": resumed_from,
        "identical": not checkpoints["mismatches"] and logs["identical"],
        "max_abs_diff": checkpoints["max_abs_diff"],
        "checkpoint_mismatches": checkpoints["mismatches"][:20],
        "log": logs,
        "seconds": {k: round(v, 1) for k, v in seconds.items()},
    }


if __name__ == "__main__":
    print(json.dumps(kill_and_resume(), indent=1))
