"""Training on WIDER Face, split as torchvision's detection references split theirs.

- ``config``: ``TrainConfig``, every knob of a run, checked when built (torch-free).
- ``schedule``: learning rate and per-epoch sample order, pure functions (torch-free).
- ``data``: parse a split, build its decoded-image cache, k-means anchors.
- ``distributed``: rank, world size and device under ``torchrun``.
- ``checkpointing``: what a checkpoint holds, writing it, resuming from it.
- ``engine``: ``train_one_epoch`` and ``evaluate``.
- ``loop``: ``train(cfg)``, which wires the above together.

This file imports nothing, so ``facedet.training.config`` stays importable without torch.
"""
