"""Per-layer parameters, stored bytes and MACs of a model, computed from its config alone.

Torch-free, so ``facedet summary`` works on an integer model file without torch. The stored
bytes are exactly the arrays the integer model file holds (``facedet.model_file``); the file on
disk adds only its header, manifest and checksum (``file overhead``).

Storage per quantized layer:
- weights of the *stored* (reduced) kernel: binary as packed bits (ceil(n/8) bytes), int8 as
  one byte each; duplicated weight channels are stored once, duplicated input maps are summed
  into the effective kernel only at run time (their d*Cin binary channels are stored);
- thresholds: ``levels`` per output channel, int16 when the accumulator fits in int16, else
  int32, plus one direction bit per channel (packed) for negative BN scales;
- the head: its weights, then a float32 scale and bias per output channel.
Float models are stored as float32 parameters (conv weights, BN affine and statistics, bias).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from facedet.config import ModelConfig
from facedet.engine.bounds import layer_accumulator_bound, threshold_dtype_bytes


@dataclass(frozen=True)
class LayerSummary:
    name: str
    kind: str  # "conv" | "head"
    in_channels: int
    out_channels: int
    kernel: int
    weight: str
    dup_weight: int
    dup_input: int
    out_size: int  # output map side before pooling (pixels of the map)
    params: int  # trainable parameters of the torch layer (weights + BN/bias)
    stored_weights: int  # weight values actually stored (after weight duplication)
    weight_bytes: int
    threshold_bytes: int
    affine_bytes: int
    macs: int  # multiply-accumulates of the reduced (cheapest equivalent) computation

    @property
    def stored_bytes(self) -> int:
        return self.weight_bytes + self.threshold_bytes + self.affine_bytes


def summarize(config: ModelConfig, img_size: int | None = None) -> list[LayerSummary]:
    """One ``LayerSummary`` per conv layer and the head, at ``img_size`` (default: the config's)."""
    size = img_size or config.img_size
    levels = 2**config.act_bits - 1
    rows: list[LayerSummary] = []
    in_channels, in_max = 3, 255  # uint8 pixels
    for index, spec in enumerate(config.layers):
        out, k = spec.out_channels, spec.kernel
        full_in = in_channels * spec.dup_input
        stored_in, stored_out = full_in, out
        if spec.dup_weight > 1 and config.dup_axis == "in":
            stored_in = full_in // spec.dup_weight
        elif spec.dup_weight > 1:
            stored_out = out // spec.dup_weight
        stored = stored_out * stored_in * k * k
        if config.quantized:
            # Reduced compute: in-axis dup sums input groups first; out-axis dup computes each
            # stored filter once; duplicated inputs are summed into one effective kernel.
            macs_per_pixel = stored_out * (stored_in if spec.dup_weight > 1 else in_channels) * k * k
            bound = layer_accumulator_bound(spec, in_channels, in_max)
            weight_bytes = math.ceil(stored / 8) if spec.weight == "binary" else stored
            threshold_bytes = out * levels * threshold_dtype_bytes(bound) + math.ceil(out / 8)
            params = stored + 2 * out
        else:
            macs_per_pixel = out * in_channels * k * k
            weight_bytes = 4 * (stored + 4 * out)  # conv + BN (weight, bias, mean, var), float32
            threshold_bytes = 0
            params = stored + 2 * out
        rows.append(
            LayerSummary(
                name=f"conv{index + 1}",
                kind="conv",
                in_channels=in_channels,
                out_channels=out,
                kernel=k,
                weight=spec.weight,
                dup_weight=spec.dup_weight,
                dup_input=spec.dup_input,
                out_size=size,
                params=params,
                stored_weights=stored,
                weight_bytes=weight_bytes,
                threshold_bytes=threshold_bytes,
                affine_bytes=0,
                macs=macs_per_pixel * size * size,
            )
        )
        if spec.pool == "max2":
            size //= 2
        in_channels, in_max = out, levels
    head_out = config.num_anchors * 5
    dup = config.head_dup_input if config.quantized else 1
    stored = head_out * in_channels * dup
    if config.quantized:
        weight_bytes = math.ceil(stored / 8) if config.head_weight == "binary" else stored
        affine_bytes = 8 * head_out
    else:
        weight_bytes, affine_bytes = 4 * stored, 4 * head_out
    rows.append(
        LayerSummary(
            name="head",
            kind="head",
            in_channels=in_channels,
            out_channels=head_out,
            kernel=1,
            weight=config.head_weight,
            dup_weight=1,
            dup_input=dup,
            out_size=size,
            params=stored + head_out,
            stored_weights=stored,
            weight_bytes=weight_bytes,
            threshold_bytes=0,
            affine_bytes=affine_bytes,
            macs=head_out * in_channels * size * size,
        )
    )
    return rows


def totals(rows: list[LayerSummary]) -> dict[str, int]:
    return {
        "params": sum(r.params for r in rows),
        "stored_weights": sum(r.stored_weights for r in rows),
        "stored_bytes": sum(r.stored_bytes for r in rows),
        "macs": sum(r.macs for r in rows),
    }


def summary_dict(config: ModelConfig, img_size: int | None = None) -> dict[str, object]:
    rows = summarize(config, img_size)
    return {
        "model": config.name,
        "img_size": img_size or config.img_size,
        "layers": [asdict(r) | {"stored_bytes": r.stored_bytes} for r in rows],
        "total": totals(rows),
    }


def format_table(config: ModelConfig, img_size: int | None = None, file_bytes: int | None = None) -> str:
    """A fixed-width text table of ``summarize`` (what ``facedet summary`` prints)."""
    rows = summarize(config, img_size)
    header = (
        f"{'layer':<6} {'in->out':>10} {'k':>2} {'weights':>7} {'dupW':>4} {'dupI':>4} {'map':>4} "
        f"{'params':>10} {'stored B':>9} {'MACs':>13}"
    )
    lines = [f"{config.name} at {img_size or config.img_size}x{img_size or config.img_size}", header, "-" * len(header)]
    for r in rows:
        lines.append(
            f"{r.name:<6} {f'{r.in_channels}->{r.out_channels}':>10} {r.kernel:>2} {r.weight:>7} {r.dup_weight:>4} "
            f"{r.dup_input:>4} {r.out_size:>4} {r.params:>10,} {r.stored_bytes:>9,} {r.macs:>13,}"
        )
    t = totals(rows)
    lines.append("-" * len(header))
    lines.append(
        f"{'total':<6} {'':>10} {'':>2} {'':>7} {'':>4} {'':>4} {'':>4} {t['params']:>10,} "
        f"{t['stored_bytes']:>9,} {t['macs']:>13,}"
    )
    if file_bytes is not None:
        lines.append(f"file on disk: {file_bytes:,} bytes (file overhead {file_bytes - t['stored_bytes']:,} bytes)")
    return "\n".join(lines)
