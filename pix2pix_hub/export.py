"""Export a generator to ONNX with dynamic batch and spatial size, and check it against torch with onnxruntime.

The exported graph is the bare generator: input ``"input"`` ``(N, in_channels, H, W)`` float32 in [-1, 1], output
``"output"`` ``(N, out_channels, H, W)`` in [-1, 1]; H and W must be multiples of ``size_multiple`` (stored in the
model's metadata with the channel counts), so pad or resize first as ``Pix2Pix`` does. ``onnx`` and
``onnxruntime`` (the ``onnx`` extra) are imported only when exporting.
"""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

DEFAULT_OPSET = 17
DEFAULT_TOLERANCE = 1e-4
INPUT_NAME = "input"
OUTPUT_NAME = "output"


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
    """Write ``generator`` (eval mode, on CPU, fp32) to ``path`` and return a report.

    With ``check`` the file is compared with torch on two inputs of different batch and spatial size
    (``max_abs_diff`` in the report); if the difference exceeds ``tolerance`` a ``ParityError`` is raised and
    nothing is written. ``describe`` adds the metadata and runs ``onnx.checker`` (for files people keep: ~2 s of
    a ~6 s unet_256 export; ``Pix2Pix``'s own cache skips it). The file appears at ``path`` only once complete
    (temp file, then ``os.replace``).
    """

    generator = generator.eval().float().to("cpu")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    multiple = int(generator.size_multiple)
    # At least 64 pixels: a ResNet generator's size_multiple (4) leaves too small a bottleneck for its padding.
    side = multiple * -(-64 // multiple)
    shapes = [(1, generator.in_channels, side, side), (2, generator.in_channels, side, 2 * side)]
    handle, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    try:
        example = torch.zeros(shapes[0])
        dynamic = {0: "batch", 2: "height", 3: "width"}
        with warnings.catch_warnings():
            # The legacy (TorchScript) exporter warns that it is legacy, and the trace warns about the generator's
            # input checks; both are expected. It is used because the torch.export-based one needs onnxscript.
            warnings.simplefilter("ignore")
            torch.onnx.export(
                generator,
                (example,),
                temp_name,
                dynamo=False,
                opset_version=opset,
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                dynamic_axes={INPUT_NAME: dynamic, OUTPUT_NAME: dynamic},
            )
        if describe:
            describe_model(temp_name, generator)
        report: dict[str, Any] = {"path": str(path), "opset": opset, "size_multiple": multiple}
        if check:
            diff = parity_check(generator, temp_name, shapes, seed=seed)
            report.update(
                max_abs_diff=diff, tolerance=tolerance, checked_shapes=["x".join(map(str, s)) for s in shapes]
            )
            if not diff <= tolerance:
                raise ParityError(
                    f"ONNX output differs from torch by up to {diff:.3g} (tolerance {tolerance:g}); {path} was not "
                    "written. Try another --opset, or pass --tolerance if the difference is acceptable."
                )
        os.replace(temp_name, path)
        report["bytes"] = path.stat().st_size
        return report
    finally:
        Path(temp_name).unlink(missing_ok=True)


def describe_model(onnx_path: str | os.PathLike, generator: nn.Module) -> None:
    """Store the generator's sizes and config in the file's metadata and validate it with ``onnx.checker``."""
    import onnx

    model = onnx.load(onnx_path)
    metadata = {
        "size_multiple": str(generator.size_multiple),
        "in_channels": str(generator.in_channels),
        "out_channels": str(generator.out_channels),
        "value_range": "[-1, 1]",
        "generator": type(generator).__name__,
        "config": json.dumps(getattr(generator, "_hub_mixin_config", None) or {}, sort_keys=True),
    }
    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(model)
    onnx.save(model, onnx_path)


def parity_check(
    generator: nn.Module, onnx_path: str | os.PathLike, shapes: list[tuple[int, int, int, int]], *, seed: int = 0
) -> float:
    """Largest absolute difference between torch and onnxruntime over random inputs of the given NCHW shapes."""
    session = onnx_session(onnx_path)
    rng = torch.Generator().manual_seed(seed)
    worst = 0.0
    for shape in shapes:
        batch = torch.rand(shape, generator=rng) * 2 - 1
        with torch.inference_mode():
            expected = generator(batch).numpy()
        actual = session.run([OUTPUT_NAME], {INPUT_NAME: batch.numpy()})[0]
        if actual.shape != expected.shape:
            raise ParityError(f"ONNX output has shape {actual.shape} for input {shape}; torch gives {expected.shape}.")
        worst = max(worst, float(np.abs(actual - expected).max()))
    return worst


def onnx_session(onnx_path: str | os.PathLike, threads: int | None = None) -> Any:
    """An onnxruntime CPU ``InferenceSession`` for ``onnx_path`` (``threads`` intra-op threads; None = default)."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    return onnxruntime.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
