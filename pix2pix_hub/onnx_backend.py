"""Run a generator through onnxruntime: on CPUs without fast transposed convolutions in torch, the same math
runs about twice as fast there (figures in README "Performance"). ``Pix2Pix``'s default on a CPU.

The ONNX graph is exported once per set of weights; any in-place change to a parameter or buffer (an optimizer
step, ``load_state_dict``) bumps torch's version counters and triggers a fresh export on the next call.
"""

from __future__ import annotations

import importlib.util
import tempfile
import threading
from pathlib import Path
from typing import Any

import torch
from torch import nn


def onnxruntime_available() -> bool:
    return importlib.util.find_spec("onnxruntime") is not None and importlib.util.find_spec("onnx") is not None


def weights_version(module: nn.Module) -> tuple[int, ...]:
    """Changes whenever a parameter or buffer is replaced or modified in place."""
    tensors = [*module.parameters(), *module.buffers()]
    return (*(id(t) for t in tensors), *(t._version for t in tensors))


class OnnxGenerator:
    """Callable like the generator in eval mode: ``(N, C, H, W)`` float32 CPU tensor -> output tensor."""

    def __init__(self, generator: nn.Module) -> None:
        self.generator = generator
        self.session: Any = None
        self.version: tuple[int, ...] = ()
        self.lock = threading.Lock()  # concurrent first calls (a Space's queue) export once

    def _session(self) -> Any:
        with self.lock:
            return self._current_session()

    def _current_session(self) -> Any:
        version = weights_version(self.generator)
        if self.session is None or version != self.version:
            from .export import export_onnx, onnx_session

            was_training = self.generator.training
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "generator.onnx"
                export_onnx(self.generator, path, check=False)
                self.session = onnx_session(path, threads=torch.get_num_threads())
            self.generator.train(was_training)
            self.version = weights_version(self.generator)
        return self.session

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        session = self._session()
        output = session.run(None, {session.get_inputs()[0].name: batch.detach().float().contiguous().numpy()})[0]
        return torch.from_numpy(output)
