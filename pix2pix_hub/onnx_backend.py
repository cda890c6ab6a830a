"""Run a generator through onnxruntime: the same math, faster on most CPUs than eager torch (see
docs/performance.md). ``Pix2Pix``'s default on a CPU.

The ONNX graph is exported once per set of weights; any in-place change to a parameter or buffer (an optimizer
step, ``load_state_dict``) bumps torch's version counters and triggers a fresh export on the next call. Exports
are kept on disk, named by a hash of the weights (``$PIX2PIX_HUB_CACHE``, default ``~/.cache/pix2pix_hub/onnx``,
the newest ``CACHE_KEEP``), so the next process that loads the same model skips the few seconds of export.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
import tempfile
import threading
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from . import export
from .imaging import model_to_uint8, pad_box, uint8_to_model


def onnxruntime_available() -> bool:
    return importlib.util.find_spec("onnxruntime") is not None and importlib.util.find_spec("onnx") is not None


def weights_version(module: nn.Module) -> tuple[int, ...]:
    """Changes whenever a parameter or buffer is replaced or modified in place."""
    tensors = [*module.parameters(), *module.buffers()]
    return (*(id(t) for t in tensors), *(t._version for t in tensors))


CACHE_ENV = "PIX2PIX_HUB_CACHE"
CACHE_KEEP = 4  # exported graphs kept (unet_256: 218 MB each)


def default_cache_dir() -> Path:
    """``$PIX2PIX_HUB_CACHE``, else ``$XDG_CACHE_HOME/pix2pix_hub/onnx`` (``~/.cache/pix2pix_hub/onnx``)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "pix2pix_hub" / "onnx"


def weights_key(generator: nn.Module) -> str:
    """A hash of everything the exported graph depends on: class, config, every tensor, torch version."""
    digest = hashlib.sha256()
    header = [type(generator).__name__, json.dumps(generator.config, sort_keys=True, default=str), torch.__version__]
    digest.update(json.dumps([*header, export.DEFAULT_OPSET]).encode())
    for name, tensor in generator.state_dict().items():
        array = tensor.detach().cpu().contiguous().numpy()
        digest.update(f"{name}:{array.dtype}:{array.shape}".encode())
        digest.update(memoryview(array).cast("B"))
    return digest.hexdigest()[:32]


def prune_cache(cache: Path, keep: int = CACHE_KEEP) -> None:
    """Delete all but the ``keep`` most recently used graphs."""
    graphs = sorted(cache.glob("*.onnx"), key=lambda path: path.stat().st_mtime, reverse=True)
    for path in graphs[keep:]:
        path.unlink(missing_ok=True)


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
            was_training = self.generator.training
            with tempfile.TemporaryDirectory() as tmp:
                self.session = export.onnx_session(self._graph(Path(tmp)), threads=torch.get_num_threads())
            self.generator.train(was_training)
            self.version = weights_version(self.generator)
        return self.session

    def _graph(self, scratch: Path) -> Path:
        """The exported graph for the current weights: from the cache, or exported (into ``scratch`` when the
        cache cannot be written). Written by ``export_onnx``, so atomically (``fileio``)."""
        cache = default_cache_dir()
        path = cache / f"{weights_key(self.generator)}.onnx"
        if path.is_file():
            with contextlib.suppress(OSError):  # a read-only cache is still a cache
                os.utime(path)  # most recently used: pruning keeps it
            return path
        try:
            export.export_onnx(self.generator, path, check=False, describe=False)
            prune_cache(cache)
        except OSError:  # a read-only or full cache: export for this session only
            path = scratch / "generator.onnx"
            export.export_onnx(self.generator, path, check=False, describe=False)
        return path

    def translate_uint8(
        self, images: list[np.ndarray], multiple: int, min_size: int, batch_size: int
    ) -> list[np.ndarray]:
        """uint8 ``(H, W, C)`` images of any size -> uint8 outputs of the same sizes, reflect-padded as
        ``fit_to_multiple`` does and rounded as ``tensor_to_uint8`` does.

        All in numpy: torch's own worker threads, woken by torch conversions around the call, would compete with
        onnxruntime's on a CPU with few cores.
        """
        session = self._session()
        name = session.get_inputs()[0].name
        outputs: list[np.ndarray | None] = [None] * len(images)
        by_size: dict[tuple[int, int], list[int]] = {}
        for index, image in enumerate(images):
            by_size.setdefault(image.shape[:2], []).append(index)
        for (height, width), indices in by_size.items():
            top, bottom, left, right, reflect = pad_box(height, width, multiple, min_size)
            for start in range(0, len(indices), batch_size):
                chunk = indices[start : start + batch_size]
                batch = uint8_to_model(np.stack([images[i] for i in chunk]))
                if top or bottom or left or right:
                    pad = ((0, 0), (0, 0), (top, bottom), (left, right))
                    batch = np.pad(batch, pad, mode="reflect" if reflect else "edge")
                result = session.run(None, {name: np.ascontiguousarray(batch)})[0]
                for i, output in zip(chunk, result):
                    outputs[i] = model_to_uint8(output[:, top : top + height, left : left + width])
        return outputs

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        session = self._session()
        output = session.run(None, {session.get_inputs()[0].name: batch.detach().float().contiguous().numpy()})[0]
        return torch.from_numpy(output)
