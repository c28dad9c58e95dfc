"""Rank, world size and device of this process; the process group under ``torchrun``."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TypeVar

import torch
import torch.distributed as dist

T = TypeVar("T")


class Dist:
    """Rank, world size and device; initialises the process group when ``WORLD_SIZE`` > 1."""

    def __init__(self, device: str) -> None:
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        use_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
        self.device = torch.device(f"cuda:{local_rank}" if use_cuda else "cpu")
        if use_cuda:
            torch.cuda.set_device(self.device)
        if self.world > 1 and not dist.is_initialized():
            dist.init_process_group("nccl" if use_cuda else "gloo")

    @property
    def main(self) -> bool:
        """Rank 0: the one process that validates, logs and writes checkpoints."""
        return self.rank == 0

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()

    def main_first(self, make: Callable[[], T]) -> T:
        """``make()`` on rank 0 first; the other ranks wait, then call it too (and find its files:
        decoded-image and teacher caches are built once, by rank 0)."""
        if self.main:
            result = make()
        self.barrier()
        if not self.main:
            result = make()
        return result

    def all_true(self, flag: bool) -> bool:
        """True when ``flag`` is true on every rank."""
        if self.world == 1:
            return flag
        t = torch.tensor([0.0 if flag else 1.0], device=self.device)
        dist.all_reduce(t)
        return float(t) == 0.0

    def wrap(self, model: torch.nn.Module, compile_model: bool) -> torch.nn.Module:
        """The module the training step calls: compiled if asked, DDP-wrapped under torchrun."""
        if self.world > 1:
            return torch.nn.parallel.DistributedDataParallel(
                model, device_ids=[self.device.index] if self.device.type == "cuda" else None
            )
        return torch.compile(model) if compile_model else model  # type: ignore[return-value]
