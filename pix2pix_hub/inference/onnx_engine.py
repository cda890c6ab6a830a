"""Run a generator through onnxruntime: the same math, faster on most CPUs than eager torch (see
docs/performance.md). ``Pix2Pix``'s default on a CPU.

The ONNX graph is exported once per set of weights; any in-place change to a parameter or buffer (an optimizer
step, ``load_state_dict``) bumps torch's version counters and triggers a fresh export on the next call. Exports
are kept on disk, named by a hash of the weights (``$PIX2PIX_HUB_CACHE``, default ``~/.cache/pix2pix_hub/onnx``,
the newest ``CACHE_KEEP``), so the next process that loads the same model skips the few seconds of export.

A graph made beforehand (a model folder's ``model.onnx`` or ``model.int8.onnx``: a ``PrebuiltGraph``) runs instead
of the export for as long as the weights are the ones it was made from (``weights_fingerprint``).
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import importlib.util
import json
import os
import tempfile
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..constants import FINGERPRINT_KEY
from ..fileio import write_bytes
from . import export


def onnxruntime_available() -> bool:
    return importlib.util.find_spec("onnxruntime") is not None and importlib.util.find_spec("onnx") is not None


def weights_version(module: nn.Module) -> tuple[int, ...]:
    """Changes whenever a parameter or buffer is replaced or modified in place."""
    tensors = [*module.parameters(), *module.buffers()]
    return (*(id(t) for t in tensors), *(t._version for t in tensors))


CACHE_ENV = "PIX2PIX_HUB_CACHE"
CACHE_KEEP = 4  # exported graphs kept: each holds a full copy of the weights (sizes in docs/performance.md)


def default_cache_dir() -> Path:
    """``$PIX2PIX_HUB_CACHE``, else ``$XDG_CACHE_HOME/pix2pix_hub/onnx`` (``~/.cache/pix2pix_hub/onnx``)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "pix2pix_hub" / "onnx"


def weights_key(generator: nn.Module) -> str:
    """A hash of everything the exported graph depends on: class, config, every tensor, torch version."""
    return _weights_digest(generator, [torch.__version__, export.DEFAULT_OPSET])


def weights_fingerprint(generator: nn.Module) -> str:
    """A hash of the network alone (class, config, every tensor), the same under any torch version: what an ONNX
    file shipped with a model records (``FINGERPRINT_KEY``), so that a graph made from other weights is noticed."""
    return _weights_digest(generator, [])


def _weights_digest(generator: nn.Module, extra: list[Any]) -> str:
    digest = hashlib.sha256()
    header = [type(generator).__name__, json.dumps(generator.config, sort_keys=True, default=str)]
    digest.update(json.dumps([*header, *extra]).encode())
    for name, tensor in generator.state_dict().items():
        array = tensor.detach().cpu().contiguous().numpy()
        digest.update(f"{name}:{array.dtype}:{array.shape}".encode())
        digest.update(memoryview(array).cast("B"))
    return digest.hexdigest()[:32]


def export_for_shipping(generator: nn.Module, path: str | os.PathLike) -> dict[str, Any]:
    """``export.export_onnx`` (parity-checked, with its metadata) plus the weights' fingerprint, so that
    ``Pix2Pix.from_pretrained`` can run the file instead of exporting; returns the export's report."""
    import onnx

    with tempfile.TemporaryDirectory() as scratch:
        report = export.export_onnx(generator, Path(scratch) / "model.onnx")
        model = onnx.load(Path(scratch) / "model.onnx")
    entry = model.metadata_props.add()
    entry.key, entry.value = FINGERPRINT_KEY, weights_fingerprint(generator)
    write_bytes(path, model.SerializeToString())
    return {**report, "path": str(path), "bytes": Path(path).stat().st_size}


@contextlib.contextmanager
def cpu_generator(generator: nn.Module) -> Iterator[nn.Module]:
    """The generator to export: itself when on the CPU (its train/eval mode restored afterwards: the exporter
    switches it to eval), else a CPU copy, so the model itself never moves."""
    if next(generator.parameters()).device.type != "cpu":
        yield copy.deepcopy(generator).cpu()
        return
    was_training = generator.training
    try:
        yield generator
    finally:
        generator.train(was_training)


def prune_cache(cache: Path, keep: int = CACHE_KEEP) -> None:
    """Delete all but the ``keep`` most recently used graphs."""
    graphs = sorted(cache.glob("*.onnx"), key=lambda path: path.stat().st_mtime, reverse=True)
    for path in graphs[keep:]:
        path.unlink(missing_ok=True)


@dataclass(frozen=True)
class PrebuiltGraph:
    """An ONNX file made from a generator's weights beforehand: ``fingerprint`` is theirs (``weights_fingerprint``);
    ``report`` is the int8 quantization report (``quantize.int8_report``), None for an fp32 graph;
    ``speedup_here``: fp32's time over int8's as measured on this machine (``speed_choice``), None if not."""

    path: Path
    fingerprint: str
    report: dict[str, Any] | None = None
    speedup_here: float | None = None

    @property
    def precision(self) -> str:
        return "fp32" if self.report is None else "int8"

    def describe(self) -> str:
        """``"onnxruntime int8 (49.8 dB vs fp32, 2.0x fp32's speed on this CPU)"``: the worst held-out image's PSNR
        from the fp32 outputs and the speed-up measured here; without one, the file's own figure, measured where
        it was quantized (``"..., 2.7x fp32's speed where quantized)"``), or the PSNR alone."""
        if self.report is None:
            return "onnxruntime"
        speed = ""
        if self.speedup_here is not None:
            speed = f", {self.speedup_here:.1f}x fp32's speed on this CPU"
        elif isinstance(self.report.get("speedup_vs_fp32"), (int, float)):
            speed = f", {self.report['speedup_vs_fp32']:.1f}x fp32's speed where quantized"
        return f"onnxruntime int8 ({self.report['psnr_db']:.1f} dB vs fp32{speed})"


class OnnxGenerator:
    """Callable like the generator in eval mode: ``(N, C, H, W)`` float32 CPU tensor -> output tensor.

    ``graph``: run this file while the generator's weights are the ones it was made from; when they change (a
    fine-tuning step), say so once and export the new weights as usual.
    """

    def __init__(self, generator: nn.Module, graph: PrebuiltGraph | None = None) -> None:
        self.generator = generator
        self.graph = graph
        self.graph_version = weights_version(generator) if graph is not None else ()
        self.session: Any = None
        self.version: tuple[int, ...] = ()
        self.lock = threading.Lock()  # concurrent first calls (a Space's queue) export once
        # Held around each run while int8 is timed against this graph in the background (``OnnxEngine``): a call
        # then waits for the current timing round instead of skewing it.
        self.turn: contextlib.AbstractContextManager = contextlib.nullcontext()

    @property
    def precision(self) -> str:
        """``"int8"`` while an int8 graph runs, else ``"fp32"``."""
        return "fp32" if self.graph is None else self.graph.precision

    def describe(self) -> str:
        return "onnxruntime" if self.graph is None else self.graph.describe()

    def open_session(self) -> Any:
        """The onnxruntime session a call runs now (opened, or exported first, if needed)."""
        with self.lock:
            return self._current_session()

    def _current_session(self) -> Any:
        version = weights_version(self.generator)
        if self.session is None or version != self.version:
            if self.graph is not None and self._graph_is_current(version):
                self.session = session_from_file(self.graph.path)
            else:
                was_training = self.generator.training
                with tempfile.TemporaryDirectory() as tmp:
                    self.session = export.onnx_session(self._graph(Path(tmp)), threads=torch.get_num_threads())
                self.generator.train(was_training)
            self.version = weights_version(self.generator)
        return self.session

    def _graph_is_current(self, version: tuple[int, ...]) -> bool:
        """Whether ``self.graph`` still belongs to the weights. A changed version counter is not enough to drop
        it: a ``dropout_at_test`` call restores batch-norm counters in place, so the fingerprint decides."""
        if version == self.graph_version:
            return True
        if weights_fingerprint(self.generator) == self.graph.fingerprint:
            self.graph_version = version
            return True
        warnings.warn(
            f"The generator's weights changed since {self.graph.path.name} was made from them: exporting the new "
            f"weights (fp32) instead.",
            stacklevel=5,
        )
        self.graph = None
        return False

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

    def __call__(self, batch: torch.Tensor | np.ndarray, code: torch.Tensor | None = None) -> torch.Tensor | np.ndarray:
        """``(N, C, H, W)`` in [-1, 1] (and a style graph's ``code`` ``(1, z_dim)``, None: zeros) -> the output: an
        array for an array, without one torch op on the way (torch's worker threads, once woken, would compete with
        onnxruntime's on a CPU with few cores); a tensor for a tensor."""
        session = self.open_session()
        inputs = session.get_inputs()
        array = batch if isinstance(batch, np.ndarray) else batch.detach().float().contiguous().numpy()
        feeds = {inputs[0].name: np.ascontiguousarray(array, dtype=np.float32)}
        if len(inputs) > 1:
            feeds[inputs[1].name] = style_feed(code, len(array), inputs[1].shape[1])
        with self.turn:
            output = session.run(None, feeds)[0]
        return output if isinstance(batch, np.ndarray) else torch.from_numpy(output)


def style_feed(code: torch.Tensor | None, count: int, dim: int) -> np.ndarray:
    """A ``(1, dim)`` style code (None: the zero code) as the ``(count, dim)`` float32 feed of a graph's style input."""
    single = np.zeros((1, dim), np.float32) if code is None else code.detach().cpu().numpy().reshape(1, dim)
    return np.ascontiguousarray(np.broadcast_to(single, (count, dim)), dtype=np.float32)


def session_from_file(path: str | os.PathLike) -> Any:
    """An onnxruntime session (torch's thread count) for the ONNX file at ``path``, read whole first: a graph from
    a downloaded repo can then not point onnxruntime at other files (external data)."""
    return export.onnx_session(Path(path).read_bytes(), threads=torch.get_num_threads())
