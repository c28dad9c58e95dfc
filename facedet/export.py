"""Export a trained detector to the integer model file (torch in, numpy out).

Quantized models (IFQ-Tinier-YOLO, DupNet-Tinier-YOLO; docs/method.md §3): each block's eval
arithmetic is ``y = float32(acc) * s; y = y + b`` with ``(s, b) = block.folded_affine()`` and
codes ``#{k : y >= k - 0.5}``. That arithmetic is emulated in numpy float32 over the whole
integer accumulator range [-bound, bound]; because it is monotone in acc, each code boundary is a
single integer threshold (``acc >= T`` for s > 0, ``acc <= T`` for s < 0, a constant code via
sentinel thresholds for s == 0), found exactly rather than by a division that could round the
other way. The stored (reduced) integer kernels go to the file as they are: binary bits packed,
int8 as bytes. The head keeps its integer kernel and the float32 ``scale``/``bias`` the torch
model multiplies and adds.

The float Tiny-YOLO exports to an 8-bit model instead (``export_int8``; arithmetic in
``facedet.engine.int8``): activation ranges are calibrated on images, and the result is compared
with the float model (an approximation, so it is measured, not required to be exact).

After writing, ``export_model`` loads the file with ``IntEngine`` and checks it against the torch
eval model, layer by layer and bit for bit, on a few images; any difference raises.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

from facedet import __version__
from facedet.config import ModelConfig, deployment_img_size
from facedet.engine import IntEngine
from facedet.engine.bounds import layer_accumulator_bound
from facedet.engine.fold import fold_thresholds
from facedet.engine.schema import Head, Layer, ThresholdConv, to_manifest
from facedet.model_file import write_model_file

log = logging.getLogger(__name__)


class ExportError(RuntimeError):
    """The exported integer model does not reproduce the torch model."""


def _integer(t: torch.Tensor) -> NDArray[np.int64]:
    array = t.detach().cpu().double().numpy()
    rounded = np.rint(array)
    if not np.array_equal(array, rounded):
        raise ExportError("integer weights are not integers")
    return rounded.astype(np.int64)


def fold_block(block: torch.nn.Module, name: str, in_channels: int, input_max: int, levels: int) -> ThresholdConv:
    """One ``QuantConvBlock`` (eval mode) -> ``ThresholdConv`` with its stored kernel and thresholds."""
    conv, spec = block.conv, block.spec
    stored, _ = conv.stored_integer_weight()
    s, b = block.folded_affine()
    bound = layer_accumulator_bound(spec, in_channels, input_max)
    thresholds, down = fold_thresholds(s.cpu().numpy(), b.cpu().numpy(), bound, levels)
    return ThresholdConv.for_spec(
        name, spec, conv.dup_axis, in_channels, input_max, _integer(stored), thresholds, down, bound
    )


def fold_head(head: torch.nn.Module, input_max: int) -> Head:
    """The quantized head: stored integer kernel, float32 multiplier and bias as torch applies them."""
    stored, _ = head.stored_integer_weight()
    _, scale = head.effective_integer_weight()
    multiplier = scale * head.in_scale  # the very expression QuantConv2d.accumulate evaluates
    bias = head.bias if head.bias is not None else torch.zeros(head.out_channels)
    return Head(
        in_channels=head.in_channels,
        out_channels=head.out_channels,
        weight_kind=head.weight_kind,
        dup_input=head.dup_input,
        input_max=input_max,
        weight=_integer(stored),
        scale=multiplier.detach().float().cpu().numpy(),
        bias=bias.detach().float().cpu().numpy(),
    )


@torch.no_grad()
def fold_model(model: torch.nn.Module, config: ModelConfig) -> tuple[list[Layer], Head]:
    """All blocks and the head of a quantized ``FaceDetector`` as integer numpy layers."""
    if not config.quantized:
        raise ValueError(f"{config.name} is a float model; use export_int8 for it")
    model.eval()
    levels = 2**config.act_bits - 1
    layers: list[Layer] = []
    in_channels, input_max = 3, 255  # uint8 pixels
    for index, block in enumerate(model.blocks):
        layers.append(fold_block(block, f"conv{index + 1}", in_channels, input_max, levels))
        in_channels, input_max = block.spec.out_channels, levels
    return layers, fold_head(model.head, input_max)


def _scalars(data: dict[str, Any] | None) -> dict[str, Any]:
    # Only small scalar entries travel in the file (the manifest counts against the size budget).
    out: dict[str, Any] = {}
    for key, value in (data or {}).items():
        if isinstance(value, bool | int | str) or (isinstance(value, float) and np.isfinite(value)):
            out[str(key)] = value
        elif isinstance(value, dict):
            nested = _scalars(value)
            if nested:
                out[str(key)] = nested
    return out


def verification_images(
    config: ModelConfig, images: Sequence[NDArray[np.uint8]] | None = None, count: int = 2
) -> list[NDArray[np.uint8]]:
    """Letterboxed (S, S, 3) uint8 images for the parity check: the given ones, else smooth random ones."""
    from facedet.boxes import letterbox

    size = config.img_size
    if images:
        return [letterbox(image, size, config.letterbox_value)[0] for image in images]
    rng = np.random.default_rng(0)
    out = []
    for _ in range(count):
        # Low-frequency noise: natural-looking gradients give varied codes, unlike white noise.
        small = rng.integers(0, 256, (max(2, size // 16), max(2, size // 16), 3)).astype(np.uint8)
        import cv2

        out.append(cv2.resize(small, (size, size), interpolation=cv2.INTER_LINEAR))
    return out


@torch.no_grad()
def verify_against_torch(engine: IntEngine, model: torch.nn.Module, images: Iterable[NDArray[np.uint8]]) -> int:
    """Compare every layer of ``engine`` and the torch eval ``model`` bit for bit.

    Args:
        images: letterboxed (S, S, 3) uint8 BGR images at the engine's input size.

    Returns:
        the number of images checked.

    Raises:
        ExportError: naming the first layer whose output differs.
    """
    model.eval()
    checked = 0
    for image in images:
        pixels = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).float()[None]
        expected = [t[0].numpy() for t in model.forward_layers(pixels)]
        got = engine.layer_outputs(image)
        for index, (want, have) in enumerate(zip(expected, got, strict=True)):
            if want.shape != have.shape or not np.array_equal(want, have.astype(want.dtype)):
                differ = int(np.sum(want != have)) if want.shape == have.shape else -1
                name = engine.manifest["layers"][index]["name"]
                raise ExportError(f"image {checked}: layer {name} differs from torch ({differ} values)")
        checked += 1
    return checked


def export_model(
    model: torch.nn.Module,
    config: ModelConfig,
    out_path: str | Path,
    verify_images: Sequence[NDArray[np.uint8]] | None = None,
    calibration_images: Sequence[NDArray[np.uint8]] | None = None,
    metrics: dict[str, Any] | None = None,
    provenance: dict[str, Any] | None = None,
) -> Path:
    """Write ``model`` as an integer model file and verify it.

    Args:
        model: a ``FaceDetector`` (quantized: folded exactly; float: 8-bit export).
        config: its config.
        out_path: the ``.fdet`` file to write.
        verify_images: BGR images (any size) for the parity check; default two synthetic ones.
        calibration_images: BGR images for the 8-bit export's activation ranges (float models).
        metrics, provenance: small dicts stored in the manifest (scalars only).

    Raises:
        ExportError: the written file does not reproduce the torch model (quantized models).
    """
    out_path = Path(out_path)
    provenance = {
        "facedet": __version__,
        "exported": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **(provenance or {}),
    }
    if not config.quantized:
        return export_int8(model, config, out_path, calibration_images, _scalars(metrics), _scalars(provenance))
    layers, head = fold_model(model, config)
    manifest, arrays = to_manifest(config, layers, head, _scalars(metrics), _scalars(provenance))
    write_model_file(out_path, manifest, arrays)
    engine = IntEngine.load(out_path)
    checked = verify_against_torch(engine, model, verification_images(config, verify_images))
    log.info(
        "exported %s to %s (%d bytes), verified bit-exact on %d images",
        config.name,
        out_path,
        out_path.stat().st_size,
        checked,
    )
    return out_path


def export_checkpoint(
    ckpt_path: str | Path,
    out_path: str | Path,
    calibration_images: Sequence[NDArray[np.uint8]] | None = None,
    verify_images: Sequence[NDArray[np.uint8]] | None = None,
    img_size: int | None = None,
    extra_metrics: dict[str, Any] | None = None,
) -> Path:
    """Export a training checkpoint (see ``export_model``); its metrics and epoch go into the file.

    Args:
        img_size: deployment input size stored in the file (default: the checkpoint's stored
            deployment size, else its training size); the network is fully convolutional, so any
            multiple of the stride works.
        extra_metrics: scalars merged into the checkpoint's metrics (e.g. measured FDDB figures,
            which the service reports at ``/v1/model``).
    """
    from facedet.models.checkpoint import load_model

    ckpt_path = Path(ckpt_path)
    model, config, ckpt = load_model(ckpt_path)
    img_size = img_size or deployment_img_size(ckpt, config)
    if img_size != config.img_size:
        config = config.with_(img_size=img_size)
        model.config = config
    digest = hashlib.sha256(ckpt_path.read_bytes()).hexdigest()
    provenance = {"checkpoint": ckpt_path.name, "checkpoint_sha256": digest[:16], "epoch": ckpt.get("epoch")}
    return export_model(
        model,
        config,
        out_path,
        verify_images=verify_images if verify_images is not None else calibration_images,
        calibration_images=calibration_images,
        metrics={**(ckpt.get("metrics") or {}), **(extra_metrics or {})},
        provenance={k: v for k, v in provenance.items() if v is not None},
    )


@torch.no_grad()
def calibrate(
    model: torch.nn.Module, config: ModelConfig, images: Sequence[NDArray[np.uint8]], percentile: float = 99.99
) -> list[float]:
    """Per block, the ``percentile`` of |output| over the images (letterboxed to the input size).

    A high percentile rather than the max keeps one outlier pixel from stretching the int8 step.
    """
    values: list[list[NDArray[np.float32]]] = [[] for _ in model.blocks]
    rng = np.random.default_rng(0)
    for image in verification_images(config, images):
        pixels = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).float()[None]
        for index, out in enumerate(model.forward_layers(pixels)[:-1]):
            flat = out.abs().flatten().numpy()
            if flat.size > 200_000:  # subsample big maps: enough for a 99.99th percentile
                flat = rng.choice(flat, 200_000, replace=False)
            values[index].append(flat)
    return [float(np.percentile(np.concatenate(v), percentile)) for v in values]


@torch.no_grad()
def compare_with_float(
    engine: IntEngine, model: torch.nn.Module, images: Iterable[NDArray[np.uint8]]
) -> dict[str, float]:
    """How far the 8-bit engine's raw head is from the float model's: max and mean |difference|."""
    diffs = []
    for image in images:
        pixels = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).float()[None]
        expected = model(pixels)[0].numpy()
        diffs.append(np.abs(engine.raw(image) - expected))
    joined = np.concatenate([d.ravel() for d in diffs])
    return {"raw_max_abs_diff": float(joined.max()), "raw_mean_abs_diff": float(joined.mean())}


def export_int8(
    model: torch.nn.Module,
    config: ModelConfig,
    out_path: str | Path,
    calibration_images: Sequence[NDArray[np.uint8]] | None = None,
    metrics: dict[str, Any] | None = None,
    provenance: dict[str, Any] | None = None,
) -> Path:
    """Export a float (leaky) detector as an 8-bit integer model (see ``facedet.engine.int8``).

    Args:
        calibration_images: BGR images (training images) for the activation ranges; without
            them, synthetic images are used and the file says so in its provenance.
    """
    from facedet.engine.int8 import FloatConv, quantize_model

    model.eval()
    blocks = [
        FloatConv(
            weight=b.conv.weight.detach().double().numpy(),
            gamma=b.bn.weight.detach().double().numpy(),
            beta=b.bn.bias.detach().double().numpy(),
            mean=b.bn.running_mean.detach().double().numpy(),
            var=b.bn.running_var.detach().double().numpy(),
            eps=float(b.bn.eps),
            pool=b.spec.pool,
        )
        for b in model.blocks
    ]
    ranges = calibrate(model, config, calibration_images or [])
    layers, head = quantize_model(
        blocks,
        model.head.weight.detach().double().numpy(),
        model.head.bias.detach().double().numpy(),
        ranges,
        config.pixel_scale,
    )
    provenance = dict(provenance or {})
    provenance |= {
        "quantization": "int8 per-channel weights, int8 per-tensor activations, fixed-point requantization",
        "calibration_images": len(calibration_images or []) or "synthetic",
    }
    manifest, arrays = to_manifest(config, list(layers), head, metrics, provenance)
    write_model_file(out_path, manifest, arrays)
    engine = IntEngine.load(out_path)
    stats = compare_with_float(engine, model, verification_images(config, calibration_images)[:8])
    log.info("exported 8-bit %s to %s; raw head vs float: %s", config.name, out_path, stats)
    return Path(out_path)
