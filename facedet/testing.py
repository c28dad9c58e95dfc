"""Fixtures for tests and benchmarks, without torch: a random model file, a tiny WIDER tree, a free port.

``write_random_model`` is what the service and CLI tests load instead of a trained model. The
network is a tiny DupNet-style quantized detector (binary weights, a duplicated-input first layer
and head, one layer with duplicated weight channels, a stride-1 pool), its thresholds placed
around each channel's typical accumulator so that codes vary, and a head biased so that
``min_score=0`` always yields boxes.

``make_wider_tree`` writes a tiny WIDER Face tree in the official layout (8 train and 4 val
images of drawn faces) that ``facedet train`` runs on in seconds; ``free_port`` gives a free
loopback port for a test or benchmark server.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from facedet.config import HWGQ_STEPS, ConvSpec, ModelConfig
from facedet.engine.bounds import layer_accumulator_bound
from facedet.engine.fold import fold_thresholds
from facedet.engine.schema import Head, Layer, ThresholdConv, to_manifest
from facedet.model_file import write_model_file


def tiny_config(img_size: int = 64) -> ModelConfig:
    """A 4-block quantized config with every DupNet feature (stride 8; 64 px -> 8x8 grid)."""
    return ModelConfig(
        name="tiny-random",
        img_size=img_size,
        anchors=((8.0, 10.0), (20.0, 24.0), (40.0, 48.0)),
        layers=(
            ConvSpec(8, pool="max2", weight="binary", dup_input=2),
            ConvSpec(16, pool="max2", weight="binary"),
            ConvSpec(16, pool="max2", weight="binary", dup_weight=2),
            ConvSpec(16, pool="max2s1", weight="binary"),
        ),
        activation="hwgq",
        act_bits=2,
        act_step=HWGQ_STEPS[2],
        head_weight="binary",
        head_dup_input=2,
    )


def _random_kernel(rng: np.random.Generator, kind: str, shape: tuple[int, ...]) -> np.ndarray:
    if kind == "binary":
        return rng.choice(np.array([-1, 1], np.int64), size=shape)
    return rng.integers(-127, 128, size=shape)


def random_layers(config: ModelConfig, seed: int = 0) -> tuple[list[Layer], Head]:
    """Random integer layers for a quantized ``config``.

    Each channel's folded affine (s, b) is chosen so that y = acc * s + b spans the codes over
    the accumulator's typical range (mean input * kernel sum +- 1.5 standard deviations), with
    about a quarter of the channels negative (s < 0, comparisons flipped) and thresholds found
    by the exporter's exact search.
    """
    if not config.quantized:
        raise ValueError("random_layers builds quantized (threshold) models only")
    rng = np.random.default_rng(seed)
    levels = 2**config.act_bits - 1
    in_channels, input_max = 3, 255
    mean, std = 128.0, 70.0  # typical pixel statistics; codes use (levels / 2, levels / 2.5)
    layers: list[Layer] = []
    for index, spec in enumerate(config.layers):
        full_in = in_channels * spec.dup_input
        stored_in, stored_out = full_in, spec.out_channels
        if spec.dup_weight > 1 and config.dup_axis == "in":
            stored_in //= spec.dup_weight
        elif spec.dup_weight > 1:
            stored_out //= spec.dup_weight
        weight = _random_kernel(rng, spec.weight, (stored_out, stored_in, spec.kernel, spec.kernel))
        no_thresholds = np.zeros((spec.out_channels, levels), np.int64)
        down = np.zeros(spec.out_channels, bool)
        bound = layer_accumulator_bound(spec, in_channels, input_max)
        layer = ThresholdConv.for_spec(
            f"conv{index + 1}", spec, config.dup_axis, in_channels, input_max, weight, no_thresholds, down, bound
        )
        effective = layer.effective_weight().reshape(spec.out_channels, -1)
        centre = mean * effective.sum(1)
        spread = std * np.sqrt(np.square(effective).sum(1)) + 1.0
        sign = np.where(rng.random(spec.out_channels) < 0.25, -1.0, 1.0)
        s = (sign * levels / (3.0 * spread)).astype(np.float32)  # +-1.5 sd covers the codes
        b = (levels / 2.0 - s.astype(np.float64) * centre).astype(np.float32)
        layer.thresholds, layer.down = fold_thresholds(s, b, bound, levels)
        layers.append(layer)
        in_channels, input_max = spec.out_channels, levels
        mean, std = levels / 2.0, levels / 2.5
    head_out = config.num_anchors * 5
    head_weight = _random_kernel(rng, config.head_weight, (head_out, in_channels * config.head_dup_input, 1, 1))
    scale = np.full(head_out, 0.5 / np.sqrt(in_channels * config.head_dup_input), np.float32)
    bias = np.zeros(head_out, np.float32)
    bias[4::5] = -1.0  # objectness around sigmoid(-1): boxes at min_score 0, few at 0.5
    head = Head(in_channels, head_out, config.head_weight, config.head_dup_input, input_max, head_weight, scale, bias)
    return layers, head


def write_random_model(path: str | Path, config: ModelConfig | None = None, seed: int = 0) -> Path:
    """Write a small valid random integer model file and return its path.

    Args:
        path: where to write (``.fdet`` by convention).
        config: a quantized config (default ``tiny_config()``: 64 px input, 4 blocks).
        seed: random seed; the same seed writes the same bytes.
    """
    config = config or tiny_config()
    layers, head = random_layers(config, seed)
    manifest, arrays = to_manifest(config, layers, head, provenance={"source": "facedet.testing", "seed": seed})
    return write_model_file(path, manifest, arrays)


def randomize_bn(model: Any, seed: int = 0, negative: float = 0.3, zero: float = 0.05) -> None:
    """Give every BatchNorm2d of a torch ``model`` non-trivial statistics (for parity tests).

    Gammas in +-[0.2, 1.2) (a ``negative`` share flipped, so thresholds compare ``acc <= T``; a
    ``zero`` share exactly 0, so codes are constant), biases and running means ~ N(0, 1), running
    variances in [0.5, 3.5). Torch is imported here only: the rest of this module is torch-free.
    """
    import torch

    generator = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            n = module.num_features
            gamma = torch.rand(n, generator=generator) + 0.2
            gamma[torch.rand(n, generator=generator) < negative] *= -1
            gamma[torch.rand(n, generator=generator) < zero] = 0.0
            values = (
                gamma,  # weight
                torch.randn(n, generator=generator),  # bias
                torch.rand(n, generator=generator) * 3 + 0.5,  # running variance
                torch.randn(n, generator=generator),  # running mean
            )
            targets = (module.weight, module.bias, module.running_var, module.running_mean)
            with torch.no_grad():
                for target, value in zip(targets, values, strict=True):
                    assert target is not None  # affine batch-norm with running statistics
                    target.copy_(value)


# Per image: (width, height, faces as (x1, y1, w, h, invalid)). One face-less image, one invalid face.
WIDER_IMAGES: dict[str, list[tuple[int, int, list[tuple[int, int, int, int, int]]]]] = {
    "train": [
        (128, 96, [(10, 12, 30, 36, 0), (70, 30, 24, 28, 0)]),
        (96, 128, [(20, 40, 40, 48, 0)]),
        (128, 96, [(50, 20, 34, 40, 0), (6, 60, 10, 12, 1)]),
        (112, 112, [(30, 30, 44, 52, 0), (84, 8, 20, 24, 0)]),
        (128, 80, []),
        (96, 96, [(8, 8, 36, 40, 0), (56, 50, 28, 34, 0)]),
        (128, 96, [(64, 10, 40, 50, 0)]),
        (100, 120, [(24, 20, 30, 38, 0), (40, 70, 26, 30, 0)]),
    ],
    "val": [
        (128, 96, [(16, 16, 40, 48, 0)]),
        (96, 128, [(30, 50, 36, 44, 0), (4, 4, 8, 9, 1)]),
        (128, 96, [(70, 30, 30, 36, 0)]),
        (112, 112, []),
    ],
}


def _draw_image(width: int, height: int, faces: list[tuple[int, int, int, int, int]], seed: int) -> NDArray[np.uint8]:
    """A noisy background with a skin-coloured ellipse, two dark eyes and a mouth per face."""
    rng = np.random.default_rng(seed)
    noise = rng.integers(40, 200, size=(height, width, 3), dtype=np.uint8)
    image = np.asarray(cv2.GaussianBlur(noise, (5, 5), 0), np.uint8)
    for x, y, w, h, _ in faces:
        centre = (x + w // 2, y + h // 2)
        cv2.ellipse(image, centre, (w // 2, h // 2), 0, 0, 360, (140, 170, 220), -1)
        eye = max(1, w // 10)
        cv2.circle(image, (x + w // 3, y + h * 2 // 5), eye, (30, 30, 30), -1)
        cv2.circle(image, (x + 2 * w // 3, y + h * 2 // 5), eye, (30, 30, 30), -1)
        cv2.line(image, (x + w // 3, y + h * 3 // 4), (x + 2 * w // 3, y + h * 3 // 4), (60, 40, 120), max(1, h // 16))
    return image


def make_wider_tree(root: Path) -> Path:
    """Write ``WIDER_{train,val}/images/0--Parade/*.jpg`` and ``wider_face_split/*_bbx_gt.txt`` under root."""
    (root / "wider_face_split").mkdir(parents=True, exist_ok=True)
    for split_index, (split, images) in enumerate(WIDER_IMAGES.items()):
        image_dir = root / f"WIDER_{split}" / "images" / "0--Parade"
        image_dir.mkdir(parents=True, exist_ok=True)
        lines: list[str] = []
        for index, (width, height, faces) in enumerate(images):
            name = f"0_Parade_marchingband_1_{index}.jpg"
            pixels = _draw_image(width, height, faces, seed=100 * split_index + index)
            cv2.imwrite(str(image_dir / name), pixels, [cv2.IMWRITE_JPEG_QUALITY, 90])
            lines += [f"0--Parade/{name}", str(len(faces))]
            # x1 y1 w h blur expression illumination invalid occlusion pose
            lines += [f"{x} {y} {w} {h} 0 0 0 {invalid} 0 0 " for x, y, w, h, invalid in faces]
            if not faces:
                lines.append("0 0 0 0 0 0 0 0 0 0 ")
        (root / "wider_face_split" / f"wider_face_{split}_bbx_gt.txt").write_text("\n".join(lines) + "\n")
    return root


def free_port(host: str = "127.0.0.1") -> int:
    """A port that is free on ``host`` now (the OS picks it; another process may take it before use)."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])
