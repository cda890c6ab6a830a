"""Export a generator to ONNX with dynamic batch and spatial size, and check it against torch with onnxruntime.

The exported graph is the bare generator: input ``"input"`` ``(N, in_channels, H, W)`` float32 in [-1, 1], output
``"output"`` ``(N, out_channels, H, W)`` in [-1, 1]; H and W must be multiples of ``size_multiple`` (stored in the
model's metadata with the channel counts), so pad or resize first as ``Pix2Pix`` does. A SPADE generator with a style
encoder takes its style code as a second input, ``"z"`` ``(N, z_dim)`` float32 (metadata ``style_dim``; zeros are
the default code, ``style.style_code`` makes the others); the encoder itself stays in torch. Spectral-norm
parametrizations are exported as the fixed weights they give in eval mode. ``onnx`` and
``onnxruntime`` are imported by the functions that use them, so ``import pix2pix_hub`` (and ``pix2pix-hub --help``)
does not load them.
"""

from __future__ import annotations

import copy
import io
import json
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.utils import parametrize

from ..constants import INT8_ONNX_NAME, ONNX_NAME
from ..fileio import atomic_file
from .style import style_dim

DEFAULT_OPSET = 17
DEFAULT_TOLERANCE = 1e-4
INPUT_NAME = "input"
OUTPUT_NAME = "output"
STYLE_NAME = "z"  # the style code input of a generator that takes one (``style.style_dim``)


class ParityError(RuntimeError):
    """The ONNX model's outputs differ from torch's by more than the tolerance."""


def export_onnx(
    generator: nn.Module,
    path: str | os.PathLike,
    *,
    opset: int = DEFAULT_OPSET,
    check: bool = True,
    tolerance: float = DEFAULT_TOLERANCE,
    seed: int = 0,
    describe: bool = True,
) -> dict[str, Any]:
    """Write ``generator`` to ``path`` as an ONNX graph and return a report.

    Args:
        generator: one of this package's (a ``HubModel`` with ``size_multiple`` and channel counts); it is put in
            eval mode, fp32, on the CPU.
        path: the file; it appears only once complete (``fileio.atomic_file``).
        opset: the ONNX opset.
        check: compare the graph with torch on two inputs of different batch and spatial size (``parity_side``).
        tolerance: the largest absolute difference ``check`` accepts.
        seed: seed of the check's random inputs.
        describe: add the generator's metadata and run ``onnx.checker`` (for files people keep; ``Pix2Pix``'s own
            cache skips it).

    Returns:
        ``path``, ``opset``, ``size_multiple`` and ``bytes`` (and ``style_dim`` for a graph with a style input);
        with ``check`` also ``max_abs_diff``, ``tolerance`` and ``checked_shapes``.

    Raises:
        ParityError: the difference exceeds ``tolerance``; nothing is written.
        ValueError: ``path`` is named ``model.int8.onnx`` (``check_graph_name``).
    """
    check_graph_name(path, "fp32")
    generator = generator.eval().float().to("cpu")
    path = Path(path)
    multiple = int(generator.size_multiple)
    side = parity_side(generator)
    shapes = [(1, generator.in_channels, side, side), (2, generator.in_channels, side, 2 * side)]
    report: dict[str, Any] = {"path": str(path), "opset": opset, "size_multiple": multiple}
    if style_dim(generator):
        report["style_dim"] = style_dim(generator)  # the graph's second input, "z" (N, style_dim)
    # The temporary file is opened first, so an unwritable destination fails before the export, not after it.
    with atomic_file(path) as file:
        graph = onnx_bytes(fixed_weights(generator), shapes[0], opset)
        if describe:
            graph = describe_model(graph, generator)
        if check:
            diff = parity_check(generator, graph, shapes, seed=seed)
            report.update(
                max_abs_diff=diff, tolerance=tolerance, checked_shapes=["x".join(map(str, s)) for s in shapes]
            )
            if not diff <= tolerance:
                raise ParityError(
                    f"ONNX output differs from torch by up to {diff:.3g} (tolerance {tolerance:g}); {path} was not "
                    "written. Try another --opset, or pass --tolerance if the difference is acceptable."
                )
        file.write(graph)
    report["bytes"] = path.stat().st_size
    return report


def parity_side(generator: nn.Module) -> int:
    """The side of the parity check's inputs.

    Returns:
        64 rounded up to the size multiple, and for a generator whose smallest input is more than one multiple
        (``min_size``) at least twice that.

    Why not smaller: a ResNet generator's multiple (4) leaves too small a bottleneck for its padding; and at its
    smallest inputs a deep generator (pix2pixHD's local enhancer) works on 2x2 maps where reflection padding is
    most of each, so the float32 rounding of the two runtimes drifts apart most (docs/inference.md). A generator
    that takes any multiple (the U-Net: ``min_size == size_multiple``) has no such padding.
    """
    multiple, min_size = int(generator.size_multiple), int(generator.min_size)
    wanted = 64 if min_size <= multiple else max(64, 2 * min_size)
    return multiple * -(-wanted // multiple)


# The name a model folder gives each kind of graph: loading reads the kind from the name, so neither is written
# under the other's name.
GRAPH_NAMES = {"fp32": ONNX_NAME, "int8": INT8_ONNX_NAME}


def check_graph_name(path: str | os.PathLike, precision: str) -> None:
    """``ValueError`` when ``path`` has the name a model folder gives the other kind of graph than ``precision``
    (``"fp32"`` or ``"int8"``): ``from_pretrained`` would take it for what its name says."""
    name = Path(path).name
    for kind, reserved in GRAPH_NAMES.items():
        if kind != precision and name == reserved:
            raise ValueError(
                f"{path}: an {precision} graph is not written under the name {reserved}, which a model folder gives "
                f"its {kind} graph (loading would run it as {kind}); name it {GRAPH_NAMES[precision]} or another name."
            )


def check_export_target(path: str | os.PathLike, model: str | os.PathLike) -> None:
    """``ValueError`` when ``path`` is a file of the local model folder ``model`` (its weights, config, card...):
    the export would replace it. A new file in the folder, or an earlier ``.onnx`` export there, is fine."""
    path, folder = Path(path).resolve(), Path(model).resolve()
    if path.exists() and path.is_relative_to(folder) and path.suffix.lower() != ".onnx":
        raise ValueError(f"{path} is a file of the model folder {model}: the export would replace it.")


def fixed_weights(generator: nn.Module) -> nn.Module:
    """The generator as the exporter traces it: the exporter cannot trace spectral norm's power iteration, and in
    eval mode the weights it gives are constants anyway.

    Args:
        generator: the network; never changed (``parametrize.remove_parametrizations`` is not used: on a copy it
            deletes the property from the parametrized class the copy shares with the original).

    Returns:
        ``generator`` itself, or for one with parametrized weights an eval-mode copy whose weights are the fixed
        ones the parametrizations give now.
    """
    if not any(parametrize.is_parametrized(module) for module in generator.modules()):
        return generator
    baked = copy.deepcopy(generator).eval()
    with torch.no_grad():
        for module in baked.modules():
            if not parametrize.is_parametrized(module):
                continue
            values = {name: getattr(module, name).detach().clone() for name in module.parametrizations}
            module.__class__ = module.__class__.__bases__[0]  # the class parametrize derived its own from
            del module._modules["parametrizations"]
            for name, value in values.items():
                module.register_parameter(name, nn.Parameter(value, requires_grad=False))
    return baked


def onnx_bytes(generator: nn.Module, example_shape: tuple[int, ...], opset: int) -> bytes:
    """The serialized ONNX graph of ``generator`` with dynamic batch, height and width (and the style code's batch
    for a generator that takes one)."""
    buffer = io.BytesIO()
    dynamic = {0: "batch", 2: "height", 3: "width"}
    names, axes = [INPUT_NAME], {INPUT_NAME: dynamic, OUTPUT_NAME: dynamic}
    example: tuple[torch.Tensor, ...] = (torch.zeros(example_shape),)
    if style_dim(generator):
        names.append(STYLE_NAME)
        axes[STYLE_NAME] = {0: "batch"}
        example += (torch.zeros(example_shape[0], style_dim(generator)),)
    with warnings.catch_warnings():
        # The legacy (TorchScript) exporter warns that it is legacy, and the trace warns about the generator's
        # input checks; both are expected. It is used because the torch.export-based one needs onnxscript.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            generator,
            example,
            buffer,
            dynamo=False,
            opset_version=opset,
            input_names=names,
            output_names=[OUTPUT_NAME],
            dynamic_axes=axes,
        )
    return buffer.getvalue()


def describe_model(graph: bytes, generator: nn.Module) -> bytes:
    """``graph`` with the generator's sizes and config in its metadata, validated by ``onnx.checker``."""
    import onnx

    model = onnx.load_from_string(graph)
    metadata = {
        "size_multiple": str(generator.size_multiple),
        "in_channels": str(generator.in_channels),
        "out_channels": str(generator.out_channels),
        "value_range": "[-1, 1]",
        "generator": type(generator).__name__,
        "style_dim": str(style_dim(generator)),
        "config": json.dumps(generator.config, sort_keys=True),
    }
    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(model)
    return model.SerializeToString()


def parity_check(
    generator: nn.Module, graph: bytes | str | os.PathLike, shapes: list[tuple[int, int, int, int]], *, seed: int = 0
) -> float:
    """Largest absolute difference between torch and onnxruntime over random inputs of the given NCHW shapes (and
    random N(0, I) style codes for a generator that takes one); ``graph`` is a serialized model or a file."""
    session = onnx_session(graph)
    rng = torch.Generator().manual_seed(seed)
    worst = 0.0
    for shape in shapes:
        batch = torch.rand(shape, generator=rng) * 2 - 1
        inputs = (batch,) + (
            (torch.randn(shape[0], style_dim(generator), generator=rng),) if style_dim(generator) else ()
        )
        with torch.inference_mode():
            expected = generator(*inputs).numpy()
        feeds = dict(zip([INPUT_NAME, STYLE_NAME], (tensor.numpy() for tensor in inputs)))
        actual = session.run([OUTPUT_NAME], feeds)[0]
        if actual.shape != expected.shape:
            raise ParityError(f"ONNX output has shape {actual.shape} for input {shape}; torch gives {expected.shape}.")
        worst = max(worst, float(np.abs(actual - expected).max()))
    return worst


def onnx_session(graph: bytes | str | os.PathLike, threads: int | None = None) -> Any:
    """An onnxruntime CPU ``InferenceSession`` for a serialized model or a file (``threads`` intra-op threads;
    None = default)."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    model = graph if isinstance(graph, bytes) else os.fspath(graph)
    return onnxruntime.InferenceSession(model, options, providers=["CPUExecutionProvider"])
