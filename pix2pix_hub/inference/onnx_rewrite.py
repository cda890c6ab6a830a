"""The sub-pixel rewrite of an exported generator's ONNX graph, which lets its transposed convolutions quantize.

onnxruntime keeps ``ConvTranspose`` in fp32 in a quantized model, and a U-Net's transposed convs are most of its
time, so quantizing the exported graph as it is gains nothing. A stride-2 transposed conv equals a stride-1 conv
with 4x the output channels (one group per output phase) followed by ``DepthToSpace`` and a crop (the "sub-pixel"
form); that conv quantizes like any other. ``subpixel_rewrite`` does it on the ONNX graph, so the torch modules
and the safetensors weights stay as they are. ``onnx`` is imported on use only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import onnx


def subpixel_rewrite(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of ``model`` with every stride-2 ``ConvTranspose`` replaced by ``Conv`` + ``DepthToSpace`` + ``Slice``.

    Covered: square kernels, the same padding on all four sides, equal ``output_padding`` on both axes, no groups
    or dilation (the U-Net's 4x4 pad 1 and the ResNet's 3x3 pad 1 output_padding 1). A ``BatchNormalization``
    that alone reads the transposed conv's output is folded into the new conv.

    Args:
        model: an exported generator graph (left unchanged).

    Returns:
        The rewritten copy: other nodes and weights copied unchanged, a transposed conv of another shape left as
        it is; the same outputs within float rounding.
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
    """The stride-1 ``Conv`` equivalent to a stride-2 ``ConvTranspose``, one channel block per output phase.

    Args:
        weight: the transposed conv's weight ``(C_in, C_out, k, k)``.
        bias: its bias ``(C_out,)``.

    Returns:
        The conv's weight ``(4 * C_out, C_in, t, t)`` and bias ``(4 * C_out,)``, ``t = ceil(k / 2)`` taps per axis.

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
