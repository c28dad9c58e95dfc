"""The integer network as a standard ONNX graph (opset 17): the nodes of each layer kind.

Input ``image``: (N, H, W, 3) uint8 letterboxed BGR (H, W multiples of the stride); output ``raw``:
(N, A*5, H/stride, W/stride) float32, the same raw head map as ``IntEngine.raw``. Letterboxing,
decoding and NMS stay outside the graph. Activations are uint8 NCHW tensors: the codes 0..L of
threshold layers, or int8 codes + 128 for 8-bit Tiny-YOLO (zero point 128).

- ``ThresholdConv``: ``QLinearConv`` (uint8 codes, int8 kernel with ``down`` channels negated,
  per-channel scale and int32 bias from ``facedet.onnx_fold``) then MaxPool, then ``Clip(0, L)``.
  Channels that the fold cannot make exact are computed instead as ``ConvInteger`` -> int32
  accumulator -> ``GreaterOrEqual`` against each per-channel threshold, the L booleans cast to
  uint8 and added; the two channel sets are joined by ``Concat`` + ``Gather`` in channel order.
  Duplicated weight channels along the input axis: a 1x1 ``ConvInteger`` with a 0/1 kernel sums
  the d input groups first, and the stored (d times smaller) kernel runs on the sums, as the
  engines do; along the output axis the tiled kernel runs. Duplicated input maps: one conv with
  the kernel summed over the d copies (the same accumulator). Pools commute with the monotone
  codes, so pooling after the codes is exact.
- ``RequantConv``: ``ConvInteger`` -> int64 ``z = acc + bias`` -> ``round(z * m / 2^shift)`` with
  m chosen by the sign of z (``Where``), floor division as ``(v - Mod(v, d)) / d`` -> Clip to int8.
  QLinearConv cannot express it: one scale per channel (the leaky slope needs two) and 31-bit
  multipliers that float32 scales cannot hold.
- ``Head``: ``ConvInteger`` -> ``Cast`` float32 -> ``Mul`` scale -> ``Add`` bias: the engine's two
  float32 operations on an exact integer accumulator, so the raw map is bit for bit the same.
- Pools: ``max2`` is MaxPool 2x2 stride 2 (floor); ``max2s1`` is ``Pad`` mode=edge on the bottom
  row and right column, then MaxPool 2x2 stride 1 (darknet keeps the map size).

Kernels for ConvInteger are stored as uint8 with zero point 128 (the long-supported u8 x u8 form).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx
from numpy.typing import NDArray
from onnx import TensorProto, helper, numpy_helper

from facedet.engine.schema import Head, Layer, RequantConv, ThresholdConv
from facedet.onnx_fold import ChannelFit, fit_layer

OPSET = 17
IR_VERSION = 8  # what onnxruntime >= 1.15 reads
ZERO_POINT = 128  # uint8 storage of int8 values (kernels, 8-bit codes)


@dataclass
class GraphBuilder:
    """Collects nodes and constant tensors; each helper returns the name of its output."""

    nodes: list[onnx.NodeProto] = field(default_factory=list)
    constants: list[onnx.TensorProto] = field(default_factory=list)
    macs: int = 0  # conv multiply-accumulates per image at the model's input size
    notes: list[str] = field(default_factory=list)  # which form each layer took, and why
    _count: int = 0

    def name(self, hint: str) -> str:
        self._count += 1
        return f"{hint}_{self._count}"

    def const(self, hint: str, array: NDArray[Any] | np.generic) -> str:
        # a numpy scalar (np.uint8(0)) becomes a 0-d tensor, as ONNX zero points and Clip bounds are
        name = self.name(hint)
        self.constants.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def op(self, op_type: str, inputs: list[str], hint: str, out: str | None = None, **attrs: Any) -> str:
        out = out or self.name(hint)
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=out, **attrs))
        return out


def _int8_kernel(kernel: NDArray[np.integer], where: str) -> NDArray[np.int8]:
    k = np.asarray(kernel, np.int64)
    if k.min() < -128 or k.max() > 127:
        raise ValueError(f"{where}: kernel values {k.min()}..{k.max()} (summed duplicates) do not fit int8")
    return k.astype(np.int8)


def _u8_kernel(kernel: NDArray[np.integer], where: str) -> NDArray[np.uint8]:
    return (_int8_kernel(kernel, where).astype(np.int64) + ZERO_POINT).astype(np.uint8)


def conv_integer(g: GraphBuilder, x: str, kernel: NDArray[np.integer], x_zero: int, pixels: int, hint: str) -> str:
    """(N, Cin, H, W) uint8 -> (N, Cout, H, W) int32 exact accumulator; zero padding k // 2.

    ``pixels``: the conv's output pixels at the model's input size (for the MAC count)."""
    k = kernel.shape[-1]
    g.macs += int(np.prod(kernel.shape)) * pixels
    inputs = [
        x,
        g.const(f"{hint}_w", _u8_kernel(kernel, hint)),
        g.const("zp", np.uint8(x_zero)),
        g.const("zp", np.uint8(ZERO_POINT)),
    ]
    return g.op("ConvInteger", inputs, f"{hint}_acc", pads=[k // 2] * 4)


def pool(g: GraphBuilder, x: str, kind: str, hint: str) -> str:
    if kind == "none":
        return x
    if kind == "max2":
        return g.op("MaxPool", [x], f"{hint}_pool", kernel_shape=[2, 2], strides=[2, 2])
    if kind == "max2s1":  # replicate the last row and column, then a 2x2 window at stride 1
        padded = g.op(
            "Pad", [x, g.const("pads", np.array([0, 0, 0, 0, 0, 0, 1, 1], np.int64))], f"{hint}_pad", mode="edge"
        )
        return g.op("MaxPool", [padded], f"{hint}_pool", kernel_shape=[2, 2], strides=[1, 1])
    raise ValueError(f"unknown pool {kind!r}")


def _channel_vector(array: NDArray[Any], dtype: Any) -> NDArray[Any]:
    return np.asarray(array, dtype).reshape(1, -1, 1, 1)  # broadcasts over (N, C, H, W)


def _qlinear_codes(
    g: GraphBuilder, x: str, kernel: NDArray[np.int64], fits: list[ChannelFit], pixels: int, hint: str
) -> str:
    k = kernel.shape[-1]
    g.macs += int(np.prod(kernel.shape)) * pixels
    one, zero_u8 = g.const("one", np.float32(1.0)), g.const("zp", np.uint8(0))
    inputs = [
        x,
        one,
        zero_u8,
        g.const(f"{hint}_w", _int8_kernel(kernel, hint)),
        g.const(f"{hint}_scale", np.array([f.scale for f in fits], np.float32)),
        g.const("wzp", np.zeros(kernel.shape[0], np.int8)),
        one,
        zero_u8,
        g.const(f"{hint}_bias", np.array([f.bias for f in fits], np.int32)),
    ]
    return g.op("QLinearConv", inputs, f"{hint}_q", pads=[k // 2] * 4)


def _compare_codes(
    g: GraphBuilder, x: str, kernel: NDArray[np.int64], thresholds: NDArray[np.int64], pixels: int, hint: str
) -> str:
    acc = conv_integer(g, x, kernel, 0, pixels, hint)
    total = None
    for level in range(thresholds.shape[1]):
        t = g.const(f"{hint}_t{level + 1}", _channel_vector(thresholds[:, level], np.int32))
        hit = g.op("Cast", [g.op("GreaterOrEqual", [acc, t], f"{hint}_ge")], f"{hint}_hit", to=TensorProto.UINT8)
        total = hit if total is None else g.op("Add", [total, hit], f"{hint}_sum")
    assert total is not None
    return total


def _group_sum(g: GraphBuilder, x: str, channels: int, group: int, pixels: int, hint: str) -> str:
    # (N, d * C, H, W) -> (N, C, H, W): out channel c sums inputs c, C + c, ..., (d - 1) C + c.
    summer = np.zeros((channels, group * channels, 1, 1), np.int64)
    for d in range(group):
        summer[np.arange(channels), d * channels + np.arange(channels)] = 1
    acc = conv_integer(g, x, summer, 0, pixels, f"{hint}_groupsum")
    return g.op("Cast", [acc], f"{hint}_groups", to=TensorProto.UINT8)


def threshold_layer(g: GraphBuilder, x: str, layer: ThresholdConv, pixels: int) -> str:
    """Codes (N, Cout, H', W') uint8 of one threshold block."""
    sign = np.where(layer.down, -1, 1)
    group = layer.dup_weight if layer.dup_axis == "in" and layer.dup_weight > 1 else 1
    input_max = layer.input_max
    if group > 1 and layer.input_max * group <= 255:
        x = _group_sum(g, x, layer.in_channels // group, group, pixels, layer.name)
        kernel, input_max = layer.weight.astype(np.int64) * sign[:, None, None, None], layer.input_max * group
    else:
        kernel = layer.effective_weight() * sign[:, None, None, None]
    thresholds = layer.thresholds.astype(np.int64) * sign[:, None]
    fits = fit_layer(kernel, thresholds, input_max)
    exact = np.array([f.exact for f in fits])
    if exact.all():
        codes = _qlinear_codes(g, x, kernel, fits, pixels, layer.name)
        g.notes.append(f"{layer.name}: QLinearConv, all {len(fits)} channels exact")
    elif not exact.any():
        codes = _compare_codes(g, x, kernel, thresholds, pixels, layer.name)
        g.notes.append(f"{layer.name}: ConvInteger + comparisons (no channel fits QLinearConv rounding)")
    else:
        good, bad = np.flatnonzero(exact), np.flatnonzero(~exact)
        q = _qlinear_codes(g, x, kernel[good], [fits[i] for i in good], pixels, layer.name)
        c = _compare_codes(g, x, kernel[bad], thresholds[bad], pixels, layer.name)
        joined = g.op("Concat", [q, c], f"{layer.name}_joined", axis=1)
        order = np.argsort(np.concatenate([good, bad])).astype(np.int64)  # back to channel order
        codes = g.op("Gather", [joined, g.const("order", order)], f"{layer.name}_codes", axis=1)
        g.notes.append(
            f"{layer.name}: QLinearConv on {good.size} channels, ConvInteger + comparisons on {bad.tolist()}"
        )
    pooled = pool(g, codes, layer.pool, layer.name)
    top = g.const("top", np.uint8(layer.thresholds.shape[1]))
    return g.op("Clip", [pooled, g.const("zero", np.uint8(0)), top], f"{layer.name}_codes")


def requant_layer(g: GraphBuilder, x: str, layer: RequantConv, x_zero: int, pixels: int) -> str:
    """8-bit codes + 128 (N, Cout, H', W') uint8 of one 8-bit Tiny-YOLO block."""
    name = layer.name
    acc = conv_integer(g, x, layer.weight, x_zero, pixels, name)
    z = g.op(
        "Add",
        [
            g.op("Cast", [acc], f"{name}_i64", to=TensorProto.INT64),
            g.const(f"{name}_b", _channel_vector(layer.bias, np.int64)),
        ],
        f"{name}_z",
    )
    positive = g.op("GreaterOrEqual", [z, g.const("zero64", np.int64(0))], f"{name}_pos")
    m = g.op(
        "Where",
        [
            positive,
            g.const(f"{name}_m0", _channel_vector(layer.multiplier[0], np.int64)),
            g.const(f"{name}_m1", _channel_vector(layer.multiplier[1], np.int64)),
        ],
        f"{name}_m",
    )
    shift = np.asarray(layer.shift, np.int64)
    rounded = g.op(
        "Add",
        [g.op("Mul", [z, m], f"{name}_zm"), g.const(f"{name}_half", _channel_vector(1 << (shift - 1), np.int64))],
        f"{name}_v",
    )
    divisor = g.const(f"{name}_d", _channel_vector(1 << shift, np.int64))
    remainder = g.op("Mod", [rounded, divisor], f"{name}_mod")  # sign of the divisor: floor division
    quotient = g.op("Div", [g.op("Sub", [rounded, remainder], f"{name}_exact"), divisor], f"{name}_q")
    clipped = g.op("Clip", [quotient, g.const("lo", np.int64(-128)), g.const("hi", np.int64(127))], f"{name}_clip")
    shifted = g.op("Add", [clipped, g.const("offset", np.int64(ZERO_POINT))], f"{name}_u")
    codes = g.op("Cast", [shifted], f"{name}_codes", to=TensorProto.UINT8)
    return pool(g, codes, layer.pool, name)


def head_layer(g: GraphBuilder, x: str, head: Head, x_zero: int, pixels: int) -> str:
    """Raw head map (N, A*5, H, W) float32: float32(acc) * scale, then + bias."""
    acc = conv_integer(g, x, head.effective_weight(), x_zero, pixels, head.name)
    value = g.op("Cast", [acc], "head_f32", to=TensorProto.FLOAT)
    scaled = g.op("Mul", [value, g.const("head_scale", _channel_vector(head.scale, np.float32))], "head_scaled")
    return g.op("Add", [scaled, g.const("head_bias", _channel_vector(head.bias, np.float32))], "raw", out="raw")


def build_graph(layers: list[Layer], head: Head, name: str, img_size: int) -> tuple[onnx.ModelProto, GraphBuilder]:
    """The ONNX model of an integer network (input ``image``, output ``raw``) and its builder
    (``macs`` counted at ``img_size``, ``notes`` on the form each layer took)."""
    g = GraphBuilder()
    x = g.op("Transpose", ["image"], "nchw", perm=[0, 3, 1, 2])
    x_zero, size = 0, img_size  # pixels and threshold codes: zero point 0; 8-bit codes: 128
    for layer in layers:
        if isinstance(layer, ThresholdConv):
            if x_zero:
                raise ValueError(f"{layer.name}: a threshold layer after an 8-bit layer is not supported")
            x = threshold_layer(g, x, layer, size * size)
        else:
            x = requant_layer(g, x, layer, x_zero, size * size)
            x_zero = ZERO_POINT
        size = size // 2 if layer.pool == "max2" else size
    head_layer(g, x, head, x_zero, size * size)
    image = helper.make_tensor_value_info("image", TensorProto.UINT8, ["batch", "height", "width", 3])
    out = helper.make_tensor_value_info("raw", TensorProto.FLOAT, ["batch", head.out_channels, "grid_h", "grid_w"])
    graph = helper.make_graph(g.nodes, name, [image], [out], g.constants)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="facedet")
    model.ir_version = IR_VERSION
    return model, g
