"""int8 inference on CPU: the sub-pixel graph rewrite, calibrated static quantization with a quality gate, and
the CPU check that decides whether int8 is worth it.

Why the rewrite: onnxruntime keeps ``ConvTranspose`` in fp32 in a quantized model, and a U-Net's transposed convs
are most of its time, so quantizing the exported graph as it is gains nothing. A stride-2 transposed conv equals a
stride-1 conv with 4x the output channels (one group per output phase) followed by ``DepthToSpace`` and a crop
(the "sub-pixel" form); that conv quantizes like any other. ``subpixel_rewrite`` does it on the ONNX graph, so
the torch modules and the safetensors weights stay as they are.

``quantize_int8`` calibrates on real inputs, then refuses the int8 model (and writes nothing) when its outputs are
further from the fp32 outputs than ``min_psnr_db`` on held-back inputs; the measured figure is stored in the
file's metadata (``int8_report``) with how fast int8 ran next to fp32 there (``speedup_vs_fp32``).
``calibration_inputs`` gathers those inputs from a folder or a list of images.
``onnx`` and ``onnxruntime`` (the ``onnx`` extra) are imported on use only.

Whether a model uses its int8 graph (``Pix2Pix.from_pretrained(precision=...)``) follows ``int8_quality_problem``
(the stored report passed its gate), ``int8_speed_problem`` (this CPU has the instructions that make int8 fast) and
``int8_measured_speed_problem`` (int8 was measurably faster than fp32 when it was made: not so for thin models).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image

from .constants import FINGERPRINT_KEY
from .export import onnx_session
from .fileio import write_bytes
from .image_io import UnreadableImage, image_extensions, load_image
from .imaging import convert_image, uint8_to_model
from .metrics import psnr_per_image

if TYPE_CHECKING:
    import onnx

REPORT_KEY = "int8_report"  # metadata_props key of the quantization report (JSON)
DEFAULT_MIN_PSNR_DB = 40.0
# "auto" runs an int8 graph only if it ran more than this many times as fast as fp32 when it was made: on thin
# models (ngf 16 at 512x512: 0.8x) the quantize/dequantize steps cost more than the int8 convs save.
MIN_INT8_SPEEDUP = 1.1
# The speed check after the gate: untimed runs of each engine, then the median of timed runs, each right after an
# untimed run of the same engine (~1.8 s for the paper's unet_256 at 256x256 on 2 cores).
SPEED_WARMUP_RUNS = 2
SPEED_TIMED_RUNS = 5
CPUINFO_PATH = Path("/proc/cpuinfo")
# /proc/cpuinfo flags reported by cpu_capabilities (avx_vnni: the AVX2-width VNNI of recent client CPUs).
CPU_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_int8", "amx_bf16")


class QuantizationQualityError(RuntimeError):
    """The int8 model's outputs are further from the fp32 model's than the PSNR threshold allows."""

    def __init__(self, message: str, psnr_db: float) -> None:
        super().__init__(message)
        self.psnr_db = psnr_db  # the measured figure (worst held-out image)


# --- the sub-pixel rewrite -----------------------------------------------------------------------------------


def subpixel_rewrite(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of ``model`` with every stride-2 ``ConvTranspose`` replaced by ``Conv`` + ``DepthToSpace`` + ``Slice``.

    Covered: square kernels, the same padding on all four sides, equal ``output_padding`` on both axes, no groups
    or dilation (the U-Net's 4x4 pad 1 and the ResNet's 3x3 pad 1 output_padding 1). A ``BatchNormalization``
    that alone reads the transposed conv's output is folded into the new conv. Other nodes and weights are copied
    unchanged; a transposed conv of another shape is left as it is. Same outputs within float rounding.
    """
    import onnx

    rewritten = onnx.ModelProto()
    rewritten.CopyFrom(model)
    graph = rewritten.graph
    _materialize_identities(graph)
    constants = _constant_arrays(graph)
    new_nodes: list[onnx.NodeProto] = []
    folded: set[str] = set()  # outputs of the batch norms merged into a rewritten conv
    for node in graph.node:
        if node.op_type == "BatchNormalization" and node.output[0] in folded:
            continue
        geometry = _subpixel_geometry(node, constants)
        if geometry is None:
            new_nodes.append(node)
            continue
        norm = _sole_batch_norm(graph, node.output[0], constants)
        if norm is not None:
            folded.add(norm.output[0])
        new_nodes += _subpixel_nodes(graph, node, geometry, constants, norm)
    del graph.node[:]
    graph.node.extend(new_nodes)
    _drop_unused_initializers(graph)
    return rewritten


def subpixel_weights(weight: np.ndarray, bias: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``ConvTranspose`` weight ``(C_in, C_out, k, k)`` and bias ``(C_out,)`` -> the equivalent stride-1 ``Conv``
    weight ``(4 * C_out, C_in, t, t)`` and bias ``(4 * C_out,)``, with ``t = ceil(k / 2)`` taps per axis.

    Output phase ``(ry, rx)`` (row and column parity) is channel block ``2 * ry + rx``, as ``DepthToSpace``'s DCR
    mode reads it. Phase ``r`` of a stride-2 transposed conv uses kernel taps ``r, r + 2, ...``, flipped because a
    transposed conv scatters where a conv gathers; taps past the kernel's end are zero (3x3: phase 1 has one).
    """
    c_in, c_out, k, _ = weight.shape
    taps = (k + 1) // 2
    padded = np.zeros((c_in, c_out, 2 * taps, 2 * taps), dtype=np.float64)
    padded[:, :, :k, :k] = weight
    split = padded.reshape(c_in, c_out, taps, 2, taps, 2)[:, :, ::-1, :, ::-1, :]  # [i, o, ty, ry, tx, rx]
    kernel = split.transpose(3, 5, 1, 0, 2, 4).reshape(4 * c_out, c_in, taps, taps)
    return kernel, np.tile(np.asarray(bias, dtype=np.float64), 4)


def _subpixel_geometry(node: onnx.NodeProto, constants: dict[str, np.ndarray]) -> dict[str, int] | None:
    """Taps, padding and crop of the sub-pixel form of ``node``; None where it is not a transposed conv this
    rewrite covers.

    Per axis: a stride-2 transposed conv (kernel k, padding p, output padding e) sends input column X through tap
    j to column ``Z = 2X + j`` and keeps ``Z = p ... p + W_out - 1``. Writing ``Z = 2q + r``, phase r gathers taps
    ``j = r + 2t`` from ``X = q - t``: a stride-1 conv with ``ceil(k / 2)`` taps. It must cover q from ``p // 2``
    to ``W_in + (k - 3 + e - p) // 2``, which sets its padding; ``DepthToSpace`` then yields Z from ``2 * (p // 2)``,
    and the crop removes what lies outside the kept columns.
    """
    if node.op_type != "ConvTranspose" or len(node.input) < 2 or node.input[1] not in constants:
        return None
    attributes = _attributes(node)
    kernel = constants[node.input[1]].shape[2:]
    pads = attributes.get("pads", [0, 0, 0, 0])
    output_padding = attributes.get("output_padding", [0, 0])
    plain = (
        attributes.get("strides") == [2, 2]
        and attributes.get("group", 1) == 1
        and attributes.get("dilations", [1, 1]) == [1, 1]
        and attributes.get("auto_pad", b"NOTSET") in (b"NOTSET", "NOTSET")
        and "output_shape" not in attributes
        and len(kernel) == 2
        and kernel[0] == kernel[1]
        and len(set(pads)) == 1
        and len(set(output_padding)) == 1
    )
    if not plain:
        return None
    k, pad, extra = int(kernel[0]), int(pads[0]), int(output_padding[0])
    taps = (k + 1) // 2
    first, beyond = pad // 2, k - 3 + extra - pad  # q runs from first to W_in + beyond // 2
    geometry = {
        "taps": taps,
        "pad_begin": taps - 1 - first,
        "pad_end": beyond // 2 + 1,
        "crop_begin": pad - 2 * first,
        "crop_end": 1 - beyond % 2,
    }
    return geometry if geometry["pad_begin"] >= 0 and geometry["pad_end"] >= 0 else None


def _subpixel_nodes(
    graph: onnx.GraphProto,
    node: onnx.NodeProto,
    geometry: dict[str, int],
    constants: dict[str, np.ndarray],
    norm: onnx.NodeProto | None,
) -> list[onnx.NodeProto]:
    """The ``Conv``, ``DepthToSpace`` and ``Slice`` that replace ``node`` (and ``norm``, folded in), with their
    new weights added to the graph's initializers."""
    from onnx import helper, numpy_helper

    weight = constants[node.input[1]].astype(np.float64)
    c_out = weight.shape[1]
    bias = constants[node.input[2]].astype(np.float64) if len(node.input) > 2 and node.input[2] else np.zeros(c_out)
    if norm is not None:
        scale, shift = _batch_norm_affine(norm, constants)
        weight, bias = weight * scale[None, :, None, None], bias * scale + shift
    kernel, kernel_bias = subpixel_weights(weight, bias)
    base = _unique_name(graph, node.name or node.output[0])
    names = {key: f"{base}/subpixel_{key}" for key in ("weight", "bias", "conv", "phases", "starts", "ends", "axes")}
    crop_end = -geometry["crop_end"] if geometry["crop_end"] else np.iinfo(np.int64).max
    initializers = {
        names["weight"]: kernel.astype(np.float32),
        names["bias"]: kernel_bias.astype(np.float32),
        names["starts"]: np.array([geometry["crop_begin"]] * 2, dtype=np.int64),
        names["ends"]: np.array([crop_end] * 2, dtype=np.int64),
        names["axes"]: np.array([2, 3], dtype=np.int64),
    }
    graph.initializer.extend(numpy_helper.from_array(array, name) for name, array in initializers.items())
    taps, pads = geometry["taps"], [geometry["pad_begin"]] * 2 + [geometry["pad_end"]] * 2
    output = norm.output[0] if norm is not None else node.output[0]
    return [
        helper.make_node(
            "Conv",
            [node.input[0], names["weight"], names["bias"]],
            [names["conv"]],
            name=f"{base}/subpixel_conv",
            kernel_shape=[taps, taps],
            pads=pads,
            strides=[1, 1],
        ),
        helper.make_node(
            "DepthToSpace", [names["conv"]], [names["phases"]], name=f"{base}/depth_to_space", blocksize=2, mode="DCR"
        ),
        helper.make_node(
            "Slice", [names["phases"], names["starts"], names["ends"], names["axes"]], [output], name=f"{base}/crop"
        ),
    ]


def _batch_norm_affine(norm: onnx.NodeProto, constants: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Inference-mode ``BatchNormalization`` as ``x * scale + shift`` per channel (float64)."""
    gamma, beta, mean, variance = (constants[name].astype(np.float64) for name in norm.input[1:5])
    epsilon = _attributes(norm).get("epsilon", 1e-5)
    scale = gamma / np.sqrt(variance + epsilon)
    return scale, beta - mean * scale


def _sole_batch_norm(graph: onnx.GraphProto, tensor: str, constants: dict[str, np.ndarray]) -> onnx.NodeProto | None:
    """The inference-mode ``BatchNormalization`` that is the only reader of ``tensor``, if there is one."""
    readers = [node for node in graph.node if tensor in node.input]
    outputs = {value.name for value in graph.output}
    if len(readers) != 1 or tensor in outputs:
        return None
    norm = readers[0]
    foldable = (
        norm.op_type == "BatchNormalization"
        and norm.input[0] == tensor
        and len(norm.output) == 1
        and not _attributes(norm).get("training_mode", 0)
        and all(name in constants for name in norm.input[1:5])
    )
    return norm if foldable else None


def _constant_arrays(graph: onnx.GraphProto) -> dict[str, np.ndarray]:
    """Every tensor of ``graph`` with a fixed value: initializers, ``Constant`` outputs and ``Identity`` of either."""
    from onnx import numpy_helper

    values = {tensor.name: numpy_helper.to_array(tensor) for tensor in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and _attributes(node).get("value") is not None:
            values[node.output[0]] = numpy_helper.to_array(_attributes(node)["value"])
        elif node.op_type == "Identity" and node.input[0] in values:
            values[node.output[0]] = values[node.input[0]]
    return values


def _materialize_identities(graph: onnx.GraphProto) -> None:
    """Replace each ``Identity`` of an initializer with a copy of it under the Identity's output name.

    The torch exporter reads weights of equal value (zero biases, fresh batch-norm statistics) through Identity
    nodes of one shared tensor; onnxruntime's quantizer needs every conv's weight and bias to be an initializer.
    """
    initializers = {tensor.name: tensor for tensor in graph.initializer}
    outputs = {value.name for value in graph.output}
    kept = []
    for node in graph.node:
        source = initializers.get(node.input[0]) if node.op_type == "Identity" else None
        if source is None or node.output[0] in outputs:
            kept.append(node)
            continue
        copy = graph.initializer.add()
        copy.CopyFrom(source)
        copy.name = node.output[0]
    del graph.node[:]
    graph.node.extend(kept)


def _drop_unused_initializers(graph: onnx.GraphProto) -> None:
    """Remove the initializers no node reads any more (the replaced weights and the folded norms')."""
    used = {name for node in graph.node for name in node.input} | {value.name for value in graph.output}
    kept = [tensor for tensor in graph.initializer if tensor.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept)


def _attributes(node: onnx.NodeProto) -> dict[str, Any]:
    from onnx import helper

    return {attribute.name: helper.get_attribute_value(attribute) for attribute in node.attribute}


def _unique_name(graph: onnx.GraphProto, base: str) -> str:
    taken = {tensor.name for tensor in graph.initializer} | {out for node in graph.node for out in node.output}
    name, index = base, 1
    while any(existing.startswith(f"{name}/subpixel_") for existing in taken):
        name, index = f"{base}_{index}", index + 1
    return name


# --- calibrated static int8 quantization ---------------------------------------------------------------------


def quantize_int8(
    fp32_onnx_path: str | os.PathLike,
    out_path: str | os.PathLike,
    calibration_inputs: Sequence[np.ndarray | Image.Image],
    *,
    held_out: int | None = None,
    min_psnr_db: float = DEFAULT_MIN_PSNR_DB,
    fingerprint: str | None = None,
) -> dict[str, Any]:
    """Write an int8 version of the fp32 generator graph at ``fp32_onnx_path`` to ``out_path``; return its report.

    ``calibration_inputs``: real model inputs at a size the model takes, each a uint8 image ``(H, W, C)`` or
    ``(H, W)`` (numpy or PIL) or a float array ``(C, H, W)`` / ``(1, C, H, W)`` in [-1, 1]. The last ``held_out``
    of them (default a quarter, at least one) are kept out of calibration and used for the gate: the int8 outputs
    are compared with the fp32 graph's, and if the worst held-out image is below ``min_psnr_db`` dB PSNR a
    ``QuantizationQualityError`` carrying the figure is raised and nothing is written.

    The graph is rewritten to sub-pixel form, then quantized statically (QDQ; uint8 activations, MinMax ranges;
    int8 weights per output channel). Past the gate both graphs are timed on the held-out inputs. The report
    (``psnr_db``: the worst held-out image, ``psnr_db_mean``, ``max_abs_diff_levels`` in steps of 1/255 of the
    output range, the counts and the threshold; ``fp32_median_ms``, ``int8_median_ms`` and their ratio
    ``speedup_vs_fp32``, measured on this CPU) is stored in the file's metadata, where ``int8_report`` reads it
    back, with ``fingerprint`` (the weights' hash, ``onnx_backend.weights_fingerprint``) under ``FINGERPRINT_KEY``
    when given. The file appears only once complete.
    """
    import onnx

    fp32_session = onnx_session(fp32_onnx_path)
    inputs = [_model_input(item, fp32_session) for item in calibration_inputs]
    held_out = max(1, len(inputs) // 4) if held_out is None else held_out
    if not 1 <= held_out < len(inputs):
        raise ValueError(
            f"held_out={held_out} must leave at least one of the {len(inputs)} calibration inputs for calibration "
            "and hold back at least one for the quality gate."
        )
    calibration, gate = inputs[:-held_out], inputs[-held_out:]
    model = subpixel_rewrite(onnx.load(fp32_onnx_path))
    with tempfile.TemporaryDirectory() as scratch:
        int8_path = Path(scratch) / "int8.onnx"
        _quantize_static(model, Path(scratch), int8_path, calibration)
        int8_session = onnx_session(int8_path)
        report = _compare(fp32_session, int8_session, gate)
        report.update(
            calibration_inputs=len(calibration),
            min_psnr_db=float(min_psnr_db),
            format="QDQ",
            activations="uint8 per tensor",
            weights="int8 per output channel",
        )
        if not report["psnr_db"] >= min_psnr_db:
            raise QuantizationQualityError(
                f"The int8 model's outputs are {report['psnr_db']:.1f} dB PSNR from the fp32 model's on the worst of "
                f"{len(gate)} held-out inputs, below the {min_psnr_db:g} dB threshold; {out_path} was not written. "
                "Calibrate on more (and more typical) real inputs, or keep fp32.",
                report["psnr_db"],
            )
        report.update(_time_sessions(fp32_session, int8_session, gate))
        quantized = onnx.load(int8_path)
    metadata = {REPORT_KEY: json.dumps(report, sort_keys=True)}
    if fingerprint is not None:
        metadata[FINGERPRINT_KEY] = fingerprint
    for key, value in metadata.items():
        entry = quantized.metadata_props.add()
        entry.key, entry.value = key, value
    write_bytes(out_path, quantized.SerializeToString())
    return {**report, "path": str(out_path), "bytes": Path(out_path).stat().st_size}


def int8_report(path: str | os.PathLike) -> dict[str, Any] | None:
    """The quantization report stored in the ONNX file at ``path`` (``psnr_db`` and the rest), None if it has
    none (an fp32 graph, or an int8 one not made by ``quantize_int8``)."""
    report = onnx_metadata(path).get(REPORT_KEY)
    return None if report is None else json.loads(report)


def onnx_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The ``metadata_props`` of the ONNX file at ``path`` (never reading external data)."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return {entry.key: entry.value for entry in model.metadata_props}


def int8_quality_problem(report: dict[str, Any] | None) -> str | None:
    """Why an int8 graph with this stored report must not be used (one clause), or None when it passed its gate."""
    if report is None:
        return "it has no quality report (it was not made by quantize_int8), so its outputs are unchecked"
    if not report.get("psnr_db", -np.inf) >= report.get("min_psnr_db", DEFAULT_MIN_PSNR_DB):
        return (
            f"its outputs are {report.get('psnr_db')} dB from fp32's, below its gate of {report.get('min_psnr_db')} dB"
        )
    return None


def int8_measured_speed_problem(report: dict[str, Any] | None) -> str | None:
    """Why an int8 graph with this stored report is not worth running under "auto" (one clause): int8 ran at most
    ``MIN_INT8_SPEEDUP`` times as fast as fp32 when it was quantized. None otherwise, and for reports that hold
    no measurement (files made before the speed check)."""
    speedup = (report or {}).get("speedup_vs_fp32")
    if speedup is None or speedup > MIN_INT8_SPEEDUP:
        return None
    return f"int8 measured {round(speedup, 2):g}x the speed of fp32 on the CPU that quantized it"


def int8_speed_problem(capabilities: dict[str, Any] | None = None) -> str | None:
    """Why int8 would not be faster than fp32 on this CPU (one clause), or None when it has VNNI or AMX."""
    if int8_is_fast(capabilities):
        return None
    return "no AVX-512 VNNI / AVX-VNNI / AMX on this CPU: int8 would not be faster than fp32"


# --- calibration inputs -----------------------------------------------------------------------------------------

CalibrationSource = str | os.PathLike | Sequence[Any]


def calibration_inputs(source: CalibrationSource, channels: int, count: int, max_pixels: int) -> list[np.ndarray]:
    """Up to ``count`` model inputs, float32 ``(1, channels, H, W)`` in [-1, 1] at their own size (pad them to the
    generator's size multiple before calibrating), spread evenly over ``source``.

    ``source``: a folder of input images (searched recursively, in name order; files that are not readable images
    are skipped) or a list of images: PIL images, uint8 arrays ``(H, W)`` / ``(H, W, C)``, image file paths, or
    float arrays/tensors ``(C, H, W)`` in [-1, 1] (what the training data gives). Raises ``ValueError`` when fewer
    than two remain: calibration and its quality gate need one each at least.
    """
    if isinstance(source, (str, os.PathLike)):
        folder = Path(source)
        if not folder.is_dir():
            raise FileNotFoundError(f"Calibration folder {folder} does not exist (or is not a folder).")
        extensions = image_extensions()
        files = [p for p in sorted(folder.rglob("*")) if p.suffix.lower() in extensions and not _hidden(p, folder)]
        items: list[Any] = _spread(files, count)
    else:
        items = _spread(list(source), count)
    inputs = []
    for item in items:
        try:
            inputs.append(_calibration_input(item, channels, max_pixels))
        except UnreadableImage:
            continue  # a bad file among many: calibration needs typical inputs, not every one
    if len(inputs) < 2:
        raise ValueError(
            f"{len(inputs)} usable calibration image(s) in {_describe(source)}; int8 calibration and its quality gate "
            "need at least 2 (about 32 typical inputs of the model are best)."
        )
    return inputs


def _calibration_input(item: Any, channels: int, max_pixels: int) -> np.ndarray:
    """One calibration item as float32 ``(1, channels, H, W)`` in [-1, 1]."""
    if isinstance(item, (str, os.PathLike)):
        item = load_image(Path(item), channels, max_pixels)
    if isinstance(item, Image.Image):
        item = np.asarray(convert_image(item, channels), dtype=np.uint8)
    array = item.detach().cpu().float().numpy() if isinstance(item, torch.Tensor) else np.asarray(item)
    if array.dtype == np.uint8:
        array = uint8_to_model((array[:, :, None] if array.ndim == 2 else array)[None])
    else:
        array = np.asarray(array, dtype=np.float32)
        array = array[None] if array.ndim == 3 else array
    if array.ndim != 4 or array.shape[:2] != (1, channels):
        raise ValueError(
            f"A calibration image has shape {np.shape(item)}; this model takes {channels}-channel images: uint8 "
            f"(H, W, {channels}) or float ({channels}, H, W) in [-1, 1]."
        )
    if array.shape[2] * array.shape[3] > max_pixels:
        raise ValueError(f"A calibration image of {array.shape[3]}x{array.shape[2]} is above max_pixels={max_pixels}.")
    if array.size and not np.abs(array).max() <= 1.0 + 1e-3:
        raise ValueError("Float calibration images must hold values in [-1, 1]; pass 8-bit images as uint8 arrays.")
    return np.ascontiguousarray(array, dtype=np.float32)


def _spread(items: list[Any], count: int) -> list[Any]:
    """``count`` of ``items`` evenly spaced from first to last (all of them when there are no more)."""
    if len(items) <= count:
        return items
    return [items[round(k * (len(items) - 1) / max(1, count - 1))] for k in range(count)]


def _hidden(path: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def _describe(source: CalibrationSource) -> str:
    return str(source) if isinstance(source, (str, os.PathLike)) else f"the {len(source)} given"


def _model_input(item: np.ndarray | Image.Image, session: Any) -> np.ndarray:
    """One calibration input as float32 ``(1, C, H, W)`` in [-1, 1], checked against the model's channels."""
    array = np.asarray(item)
    if array.dtype == np.uint8:
        array = uint8_to_model((array[:, :, None] if array.ndim == 2 else array)[None])
    elif array.ndim == 3:
        array = array[None]
    array = np.ascontiguousarray(array, dtype=np.float32)
    channels = session.get_inputs()[0].shape[1]
    if array.ndim != 4 or array.shape[0] != 1 or array.shape[1] != channels:
        raise ValueError(
            f"A calibration input has shape {np.asarray(item).shape}; expected a uint8 image (H, W, {channels}) or "
            f"a float array ({channels}, H, W) in [-1, 1]."
        )
    if array.size and np.abs(array).max() > 1.0 + 1e-6:
        raise ValueError("Float calibration inputs must be in [-1, 1]; pass uint8 images as uint8 arrays.")
    return array


def _quantize_static(model: onnx.ModelProto, scratch: Path, out_path: Path, calibration: list[np.ndarray]) -> None:
    """onnxruntime's static quantization of ``model``, calibrated on ``calibration`` (float32 NCHW inputs)."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    fp32_path = scratch / "subpixel.onnx"
    onnx.save(model, fp32_path)
    name = model.graph.input[0].name
    reader = _CalibrationReader([{name: array} for array in calibration])
    with _quiet_preprocess_advice():
        quantize_static(
            fp32_path,
            out_path,
            reader,
            quant_format=QuantFormat.QDQ,  # same speed as QOperator here once optimized; the portable form
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,  # keeps two numbers per tensor and input: little memory
        )


class _CalibrationReader:
    """onnxruntime's ``CalibrationDataReader`` protocol over a list of feeds."""

    def __init__(self, feeds: list[dict[str, np.ndarray]]) -> None:
        self.feeds = iter(feeds)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self.feeds, None)


@contextlib.contextmanager
def _quiet_preprocess_advice() -> Iterator[None]:
    """Hide onnxruntime's "consider pre-processing" warning: its shape inference and fusions gain nothing on these
    graphs (the session's own optimizer produces the same QLinearConv graph)."""

    def keep(record: logging.LogRecord) -> bool:
        return "pre-process" not in record.getMessage()

    logger = logging.getLogger()
    logger.addFilter(keep)
    try:
        yield
    finally:
        logger.removeFilter(keep)


def _compare(fp32_session: Any, int8_session: Any, inputs: list[np.ndarray]) -> dict[str, Any]:
    """PSNR (dB, per image) and the largest difference of the int8 outputs from the fp32 outputs."""
    name = fp32_session.get_inputs()[0].name
    psnrs, worst_diff = [], 0.0
    for array in inputs:
        expected = fp32_session.run(None, {name: array})[0]
        actual = int8_session.run(None, {int8_session.get_inputs()[0].name: array})[0]
        psnrs.append(float(psnr_per_image(torch.from_numpy(actual), torch.from_numpy(expected))[0]))
        worst_diff = max(worst_diff, float(np.abs(actual - expected).max()))
    return {
        "psnr_db": round(min(psnrs), 2),
        "psnr_db_mean": round(float(np.mean(psnrs)), 2),
        "max_abs_diff_levels": round(worst_diff * 127.5, 2),  # the output range [-1, 1] spans 255 levels
        "held_out_inputs": len(inputs),
    }


def _time_sessions(fp32_session: Any, int8_session: Any, inputs: list[np.ndarray]) -> dict[str, Any]:
    """Median milliseconds per run of each session on ``inputs`` and ``speedup_vs_fp32`` (fp32's over int8's).

    The engines alternate, and each timed run follows an untimed run of the same engine on the same input, so
    both are timed with warm caches and under the same load from whatever else the machine runs.
    """
    sessions = {"fp32": fp32_session, "int8": int8_session}
    names = {key: session.get_inputs()[0].name for key, session in sessions.items()}
    for _ in range(SPEED_WARMUP_RUNS):
        for key, session in sessions.items():
            session.run(None, {names[key]: inputs[0]})
    times: dict[str, list[float]] = {key: [] for key in sessions}
    for index in range(SPEED_TIMED_RUNS):
        array = inputs[index % len(inputs)]
        for key, session in sessions.items():
            session.run(None, {names[key]: array})  # untimed: the timed run below finds warm caches
            start = time.perf_counter()
            session.run(None, {names[key]: array})
            times[key].append(time.perf_counter() - start)
    fp32_ms, int8_ms = (1000 * statistics.median(times[key]) for key in sessions)
    return {
        "fp32_median_ms": round(fp32_ms, 3),
        "int8_median_ms": round(int8_ms, 3),
        "speedup_vs_fp32": round(fp32_ms / int8_ms, 2),
    }


# --- what the CPU accelerates ---------------------------------------------------------------------------------


def cpu_capabilities(cpuinfo: str | os.PathLike = CPUINFO_PATH) -> dict[str, Any]:
    """Which low-precision instructions the CPU has: ``{"avx2", "avx512f", "avx512_vnni", "avx_vnni",
    "avx512_bf16", "amx_int8", "amx_bf16": bool, "source": str}``.

    Read from the ``flags`` line of ``/proc/cpuinfo`` (Linux on x86; on other CPUs every flag is False). Where that
    file does not exist (macOS, Windows), torch's cpuinfo-based checks answer instead; they have no ``avx_vnni``,
    and report AMX as one feature for both ``amx_`` entries.
    """
    path = Path(cpuinfo)
    if path.is_file():
        flags = _cpuinfo_flags(path)
        return {flag: flag in flags for flag in CPU_FLAGS} | {"source": str(path)}
    return _torch_capabilities()


def int8_is_fast(capabilities: dict[str, Any] | None = None) -> bool:
    """Whether int8 inference beats fp32 here: it needs VNNI (or AMX) dot products. Without them onnxruntime's
    int8 convolutions are no faster than fp32 (issue 18), so fp32 is the better default."""
    capabilities = cpu_capabilities() if capabilities is None else capabilities
    return bool(capabilities["avx512_vnni"] or capabilities["avx_vnni"] or capabilities["amx_int8"])


def _cpuinfo_flags(path: Path) -> set[str]:
    """The first processor's ``flags`` (all cores report the same); an empty set if there is no such line."""
    return set(_cpuinfo_field(path, "flags").split())


def _cpuinfo_field(path: Path, name: str) -> str:
    """The first processor's ``name`` field of ``/proc/cpuinfo``; "" if there is no such line."""
    with path.open(encoding="utf-8", errors="replace") as file:
        for line in file:
            key, _, value = line.partition(":")
            if key.strip() == name:
                return value.strip()
    return ""


def cpu_name(cpuinfo: str | os.PathLike = CPUINFO_PATH) -> str:
    """The CPU's model name, for benchmark reports (``/proc/cpuinfo``; elsewhere ``platform``'s answer)."""
    path = Path(cpuinfo)
    name = _cpuinfo_field(path, "model name") if path.is_file() else ""
    return name or platform.processor() or platform.machine()


def _torch_capabilities() -> dict[str, Any]:
    def check(name: str) -> bool:
        probe = getattr(torch.cpu, name, None)  # private helpers: absent in some torch versions
        return bool(probe()) if probe is not None else False

    amx = check("_is_amx_tile_supported")
    return {
        "avx2": check("_is_avx2_supported"),
        "avx512f": check("_is_avx512_supported"),
        "avx512_vnni": check("_is_vnni_supported"),
        "avx_vnni": False,
        "avx512_bf16": check("_is_avx512_bf16_supported"),
        "amx_int8": amx,
        "amx_bf16": amx,
        "source": "torch",
    }
