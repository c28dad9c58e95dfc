"""Learning-rate schedule and per-epoch sample order: pure functions of their arguments (torch-free).

Resume is exact because neither keeps state: the learning rate is a function of the step, the
sample order of an epoch a function of (seed, epoch), and every sample's augmentation is seeded
by the seed dealt with it here.
"""

from __future__ import annotations

import math

import numpy as np

from facedet.training.config import TrainConfig


def lr_at(step: int, cfg: TrainConfig, total_steps: int) -> float:
    """Learning rate at optimizer step ``step`` (0-based): linear warmup, then cosine to a floor."""
    min_lr = cfg.lr * cfg.min_lr_ratio
    warmup = min(cfg.warmup_steps, max(total_steps // 10, 1))
    # 1) linear warmup
    if step < warmup:
        return cfg.lr * (step + 1) / warmup
    # 2) after the schedule, stay at the floor
    if step >= total_steps:
        return min_lr
    # 3) cosine decay from lr to min_lr between warmup and total_steps
    ratio = (step - warmup) / max(total_steps - warmup, 1)
    assert 0.0 <= ratio <= 1.0
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (cfg.lr - min_lr)


def epoch_order(n: int, seed: int, epoch: int, rank: int = 0, world: int = 1) -> list[tuple[int, int]]:
    """This rank's (sample index, augmentation seed) list for an epoch; a pure function of its args.

    The permutation is padded (wrapping) to a multiple of ``world`` and dealt round-robin, as
    ``DistributedSampler`` does.
    """
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(n)
    pad = (-n) % world
    order = np.concatenate([order, order[:pad]])
    seeds = np.random.default_rng([seed, epoch, 1]).integers(0, 2**31 - 1, size=len(order))
    return [(int(i), int(s)) for i, s in zip(order[rank::world], seeds[rank::world], strict=True)]


def epoch_batches(n: int, cfg: TrainConfig, epoch: int, rank: int = 0, world: int = 1) -> list[list[tuple[int, int]]]:
    """This rank's full batches of an epoch (a last partial batch is dropped)."""
    order = epoch_order(n, cfg.seed, epoch, rank, world)
    return [order[i * cfg.batch_size : (i + 1) * cfg.batch_size] for i in range(len(order) // cfg.batch_size)]
