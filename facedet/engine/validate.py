"""Check an integer model's manifest against its arrays and sane bounds, before anything is built.

A ``.fdet`` file is untrusted input: its checksum proves only that the bytes are the ones written,
not that the writer was honest. So every manifest field the engine uses is checked here, before
``from_manifest`` tiles a kernel or the engine allocates a feature map:

- the layer chain: each layer's ``in`` is the previous ``out`` (3 for the first), ``k``, ``pool``,
  weight kind and duplication factors are known values within bounds;
- every array has exactly the shape the layer's fields imply (so a wrong ``in``/``k`` is caught);
- ``input_max`` is what the previous layer can produce (255 for pixels);
- input size and stride agree with the pools, the head has 5 outputs per anchor;
- the working memory of one image at the input size stays under ``MAX_WORK_BYTES``.

Torch-free (numpy + stdlib).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import NDArray

from facedet.config import POOLS, ModelConfig
from facedet.model_file import ModelFileError

MAX_INPUT_SIZE = 2048  # network input side in pixels (the shipped models use 416)
MAX_CHANNELS = 4096
MAX_DUP = 64  # duplication factors (DupNet uses up to 16)
MAX_LEVELS = 255  # threshold levels per channel (codes fit uint8)
MAX_LAYERS = 64
MAX_WORK_BYTES = 1 << 30  # float32 maps + im2col buffer of the largest layer, one image
_QUANT_KINDS = ("binary", "int8")
_INT8_CODE_MAX = 128  # |int8 activation| bound, the input_max of a layer after a requantized one


class _Check:
    """Collects the source name so each failure is one precise line."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, where: str, what: str) -> ModelFileError:
        return ModelFileError(f"{self.source}: invalid model manifest: {where}: {what}")

    def integer(self, entry: dict[str, Any], key: str, where: str, low: int, high: int) -> int:
        value = entry.get(key)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(where, f"{key!r} must be an integer, got {value!r}")
        if not low <= value <= high:
            raise self.fail(where, f"{key!r} = {value} is outside {low}..{high}")
        return value

    def choice(self, entry: dict[str, Any], key: str, where: str, allowed: tuple[str, ...]) -> str:
        value = entry.get(key)
        if value not in allowed:
            raise self.fail(where, f"{key!r} must be one of {', '.join(allowed)}, got {value!r}")
        return str(value)

    def array(self, arrays: dict[str, NDArray[Any]], name: str, shape: tuple[int, ...], kind: str) -> NDArray[Any]:
        if name not in arrays:
            raise self.fail(name, "array missing from the file")
        array = arrays[name]
        if tuple(array.shape) != shape:
            raise self.fail(name, f"shape {tuple(array.shape)} does not match the layer table, which implies {shape}")
        ok = {
            "int": np.issubdtype(array.dtype, np.integer),
            "bool": array.dtype == np.bool_,
            "weight": array.dtype == np.bool_ or np.issubdtype(array.dtype, np.integer),
            "float": np.issubdtype(array.dtype, np.floating) and bool(np.isfinite(array).all()),
        }[kind]
        if not ok:
            raise self.fail(name, f"dtype {array.dtype} (or a non-finite value) where {kind} values are expected")
        return array


def _threshold_layer(check: _Check, entry: dict[str, Any], arrays: dict[str, NDArray[Any]], name: str) -> int:
    """Validate a conv_threshold entry; returns the top code (the next layer's input_max)."""
    cin, cout, k = entry["in"], entry["out"], entry["k"]
    check.choice(entry, "weight", name, _QUANT_KINDS)
    axis = check.choice(entry, "dup_axis", name, ("in", "out"))
    dup = check.integer(entry, "dup_weight", name, 1, MAX_DUP)
    dup_input = check.integer(entry, "dup_input", name, 1, MAX_DUP)
    check.integer(entry, "bound", name, 0, 2**62)
    full_in, stored_in, stored_out = cin * dup_input, cin * dup_input, cout
    if dup > 1:
        if dup_input > 1:
            raise check.fail(name, "dup_weight > 1 together with dup_input > 1 is not supported by the engine")
        if (cin if axis == "in" else cout) % dup:
            raise check.fail(name, f"dup_weight {dup} does not divide the {axis}put channels")
        stored_in, stored_out = (full_in // dup, cout) if axis == "in" else (full_in, cout // dup)
    check.array(arrays, f"{name}.w", (stored_out, stored_in, k, k), "weight")
    thresholds = arrays.get(f"{name}.t")
    levels = thresholds.shape[-1] if thresholds is not None and thresholds.ndim == 2 else 0
    if not 1 <= levels <= MAX_LEVELS:
        raise check.fail(f"{name}.t", f"{levels} threshold levels per channel (expected 1..{MAX_LEVELS})")
    check.array(arrays, f"{name}.t", (cout, levels), "int")
    check.array(arrays, f"{name}.dir", (cout,), "bool")
    return levels


def _requant_layer(check: _Check, entry: dict[str, Any], arrays: dict[str, NDArray[Any]], name: str) -> int:
    cin, cout, k = entry["in"], entry["out"], entry["k"]
    check.array(arrays, f"{name}.w", (cout, cin, k, k), "int")
    check.array(arrays, f"{name}.b", (cout,), "int")
    multiplier = check.array(arrays, f"{name}.m", (2, cout), "int")
    shift = check.array(arrays, f"{name}.s", (cout,), "int")
    if shift.size and (shift.min() < 1 or shift.max() > 62):
        raise check.fail(f"{name}.s", "right shifts must be within 1..62")
    if multiplier.size and np.abs(multiplier.astype(np.int64)).max() >= 2**31:
        raise check.fail(f"{name}.m", "multipliers must be below 2^31")
    return _INT8_CODE_MAX


def _head(check: _Check, entry: dict[str, Any], arrays: dict[str, NDArray[Any]], anchors: int) -> None:
    cin, cout = entry["in"], entry["out"]
    if entry["k"] != 1:
        raise check.fail("head", f"kernel must be 1, got {entry['k']}")
    if cout != 5 * anchors:
        raise check.fail("head", f"'out' = {cout}, but {anchors} anchors need {5 * anchors} outputs")
    check.choice(entry, "weight", "head", _QUANT_KINDS)
    dup_input = check.integer(entry, "dup_input", "head", 1, MAX_DUP)
    check.array(arrays, "head.w", (cout, cin * dup_input, 1, 1), "weight")
    check.array(arrays, "head.scale", (cout,), "float")
    check.array(arrays, "head.bias", (cout,), "float")


def _work_bytes(entries: list[dict[str, Any]], size: int) -> int:
    """Largest float32 working set of one layer at input ``size``: its input and output maps plus
    the im2col buffer (k*k*Cin values per pixel), in bytes. An upper estimate of what one image needs."""
    peak = 0
    for entry in entries:
        cin, cout, k = entry["in"] * entry.get("dup_input", 1), entry["out"], entry["k"]
        peak = max(peak, size * size * (cin + cout + k * k * cin) * 4)
        if entry.get("pool") == "max2":
            size //= 2
    return peak


def validate_model(
    manifest: dict[str, Any], arrays: dict[str, NDArray[Any]], source: str, img_size: int | None = None
) -> None:
    """Raise ``ModelFileError`` (one line naming the field) unless the engine can run this model.

    Args:
        manifest: the decoded manifest (``facedet.model_file.decode_model_file``).
        arrays: its arrays, with their stored shapes.
        source: the file name used in messages.
        img_size: the input size the engine will run at (default: the manifest's).
    """
    check = _Check(source)
    if manifest.get("format") != "facedet-int":
        raise ModelFileError(f"{source}: not a facedet integer model (format {manifest.get('format')!r})")
    config = manifest.get("model_config")
    entries = manifest.get("layers")
    if not isinstance(config, dict) or not isinstance(entries, list) or not 2 <= len(entries) <= MAX_LAYERS:
        raise check.fail("manifest", f"needs a model_config dict and a layer table of 2..{MAX_LAYERS} entries")
    if not all(isinstance(entry, dict) for entry in entries):
        raise check.fail("layers", "every layer entry must be an object")
    anchors = config.get("anchors")
    if not isinstance(anchors, list) or not 1 <= len(anchors) <= 64:
        raise check.fail("model_config", "'anchors' must be a list of 1..64 [width, height] pairs")
    for anchor in anchors:
        if not (isinstance(anchor, list) and len(anchor) == 2 and all(_positive(v) for v in anchor)):
            raise check.fail("model_config", f"anchor {anchor!r} is not a pair of positive finite numbers")
    names: set[str] = set()
    channels, input_max = 3, 255
    for index, entry in enumerate(entries):
        name = entry.get("name")
        where = f"layer {index} ({name!r})"
        if not isinstance(name, str) or not name or name in names:
            raise check.fail(where, "layer names must be unique non-empty strings")
        names.add(name)
        op = check.choice(entry, "op", where, ("conv_threshold", "conv_requant", "head"))
        if (op == "head") != (index == len(entries) - 1):
            raise check.fail(where, "the head must be the last layer, and only the last")
        cin = check.integer(entry, "in", where, 1, MAX_CHANNELS)
        check.integer(entry, "out", where, 1, MAX_CHANNELS)
        check.integer(entry, "k", where, 1, 3)
        if cin != channels:
            raise check.fail(where, f"'in' = {cin}, but the previous layer gives {channels} channels")
        if entry.get("input_max") != input_max:
            raise check.fail(where, f"'input_max' = {entry.get('input_max')!r}, but its input reaches {input_max}")
        if op == "head":
            _head(check, entry, arrays, len(anchors))
            break
        if entry["k"] == 2:
            raise check.fail(where, "'k' must be 1 or 3")
        check.choice(entry, "pool", where, POOLS)
        layer = _threshold_layer if op == "conv_threshold" else _requant_layer
        input_max, channels = layer(check, entry, arrays, name), entry["out"]
    stride = 2 ** sum(entry.get("pool") == "max2" for entry in entries)
    try:
        model_config = ModelConfig.from_dict(config)
    except (KeyError, TypeError, ValueError) as exc:
        raise check.fail("model_config", str(exc) or type(exc).__name__) from exc
    for key, value in (("'stride'", manifest.get("stride")), ("model_config's stride", model_config.stride)):
        if value is not None and value != stride:
            raise check.fail(key, f"{value!r}, but the layer table pools down by {stride}")
    if not 0 <= model_config.letterbox_value <= 255:
        raise check.fail("model_config", f"letterbox_value {model_config.letterbox_value} is not a pixel value")
    size = img_size if img_size is not None else (manifest.get("input") or {}).get("size", config.get("img_size"))
    # A bad override is the caller's error (ValueError); a bad stored size is the file's.
    fail = ValueError if img_size is not None else (lambda text: check.fail("input 'size'", text))
    if isinstance(size, bool) or not isinstance(size, int) or not stride <= size <= MAX_INPUT_SIZE or size % stride:
        raise fail(f"img_size {size!r} must be a multiple of the stride {stride} within {stride}..{MAX_INPUT_SIZE}")
    work = _work_bytes(entries[:-1], size)
    if work > MAX_WORK_BYTES:
        raise fail(f"img_size {size} needs ~{work >> 20} MiB per image, over the {MAX_WORK_BYTES >> 20} MiB limit")


def _positive(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value > 0
