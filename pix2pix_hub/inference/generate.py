"""Running a generator on a batch the processor fitted: in eval mode (or the paper's test-time dropout), some inputs
at a time, on onnxruntime where the ``OnnxEngine`` runs it there, else in torch.

``generator_mode`` is the one place that puts a generator in the mode inference runs it in: ``Pix2Pix`` calls and
training's validation (what users will get) both go through it.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

if TYPE_CHECKING:
    from .precision import OnnxEngine
    from .processor import Batch


@contextlib.contextmanager
def generator_mode(generator: nn.Module, dropout_at_test: bool = False) -> Iterator[None]:
    """The generator as inference runs it, its own mode restored after: eval mode (running batch-norm statistics,
    no dropout) by default; with ``dropout_at_test`` train mode (dropout on, batch statistics) whose batch norms
    leave their running statistics untouched."""
    was_training = generator.training
    if not dropout_at_test:
        generator.eval()
        try:
            yield
        finally:
            generator.train(was_training)
        return
    norms = [m for m in generator.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [(m.momentum, m.num_batches_tracked.clone() if m.num_batches_tracked is not None else None) for m in norms]
    generator.train()
    for norm in norms:
        norm.momentum = 0.0
    try:
        yield
    finally:
        for norm, (momentum, tracked) in zip(norms, saved):
            norm.momentum = momentum
            if tracked is not None:
                norm.num_batches_tracked.copy_(tracked)
        generator.train(was_training)


def generate(
    generator: nn.Module,
    engine: OnnxEngine,
    batch: Batch,
    batch_size: int,
    dropout_at_test: bool = False,
    code: torch.Tensor | None = None,
) -> Batch:
    """The generator's output for a fitted ``(N, C, H, W)`` ``batch``, ``batch_size`` inputs at a time.

    Args:
        generator: the network; torch runs it on its own device, under ``generator_mode``.
        engine: its ``OnnxEngine``: a deterministic call runs on onnxruntime where the engine is ``active`` (a
            numpy batch then stays numpy, untouched by torch). Under ``backend="auto"`` an onnxruntime failure is
            a warning, and torch runs from then on (``engine.fall_back``); otherwise it is raised.
        batch: a tensor, or a float32 array (the processor's numpy path).
        batch_size: inputs per generator call.
        dropout_at_test: the paper's test-time dropout (always in torch).
        code: a style code ``(1, z_dim)`` for every input (a SPADE generator with a style encoder: ``style.py``);
            None for generators that take none.

    Returns:
        The output batch: a tensor, or an array where onnxruntime ran on an array.
    """
    chunks = [batch[start : start + batch_size] for start in range(0, len(batch), batch_size)]
    if not dropout_at_test:
        engine.check_runnable()
    if engine.active and not dropout_at_test and not engine.ready():  # its session is being prepared: torch now
        return run_torch(generator, chunks, code=code)
    if engine.active and not dropout_at_test:
        try:
            styled = () if code is None else (code,)  # the graph's second input, for a generator with a style
            return concatenate([engine.runner(chunk, *styled) for chunk in chunks])
        except Exception as error:  # noqa: BLE001 - "auto" falls back to torch, which runs any generator
            if engine.backend != "auto":
                raise
            warnings.warn(f"onnxruntime could not run this generator ({error}); using torch.", stacklevel=4)
            engine.fall_back()
    return run_torch(generator, chunks, dropout_at_test, code)


def run_torch(
    generator: nn.Module, chunks: list[Batch], dropout_at_test: bool = False, code: torch.Tensor | None = None
) -> torch.Tensor:
    """The generator's outputs for ``chunks`` in torch: each moved to its device and cast to its weights' dtype (a
    half-precision model takes half-precision inputs), the outputs float32 (what images are made from); ``code``
    (``(1, z_dim)``), when given, goes with every input as the generator's second argument."""
    weight = next(generator.parameters())
    outputs = []
    with torch.inference_mode(), generator_mode(generator, dropout_at_test):
        for chunk in chunks:
            inputs = torch.as_tensor(chunk).to(weight.device, weight.dtype)
            styled = () if code is None else (code.to(weight.device, weight.dtype).expand(len(inputs), -1),)
            outputs.append(generator(inputs, *styled).float())
    return concatenate(outputs)


def concatenate(outputs: list[Batch]) -> Batch:
    """Batches, all numpy or all torch, as one."""
    if len(outputs) == 1:
        return outputs[0]
    return torch.cat(outputs) if isinstance(outputs[0], torch.Tensor) else np.concatenate(outputs)
