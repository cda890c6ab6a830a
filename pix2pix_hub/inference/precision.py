"""Which graph ``Pix2Pix`` runs on onnxruntime, and why: int8 or fp32.

``OnnxEngine`` holds that choice for one generator: an int8 graph (a model folder's ``model.int8.onnx``, or one
built from calibration images), else fp32 (the folder's ``model.onnx`` when it was made from these weights, else an
export on first use); ``note`` says in one line why int8 is not used (or is used although slow), also logged.

    engine = OnnxEngine(generator, backend="auto")
    engine.choose(folder, "auto", calibration=None, build_into=None, max_pixels=4096 * 4096)
    engine.runner        # the OnnxGenerator a call runs (None: torch)
    engine.describe()    # "onnxruntime int8 (<PSNR> dB vs fp32, <speedup>x)"

An int8 graph is used only when its stored quality report passed its gate, it was made from these weights
(``weights_fingerprint``) and, under ``"auto"``, this CPU has VNNI or AMX (``quantize.int8_speed_problem``) and the
report says int8 ran more than ``MIN_INT8_SPEEDUP`` times as fast as fp32 where it was quantized
(``quantize.int8_measured_speed_problem``; reports without that figure pass).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..constants import FINGERPRINT_KEY, INT8_ONNX_NAME, ONNX_NAME
from .calibration import DEFAULT_NUM_CALIBRATION, CalibrationSource, calibration_inputs
from .onnx_engine import (
    OnnxGenerator,
    PrebuiltGraph,
    default_cache_dir,
    onnxruntime_available,
    prune_cache,
    weights_fingerprint,
    weights_version,
)
from .quantize import (
    DEFAULT_MIN_PSNR_DB,
    REPORT_KEY,
    QuantizationQualityError,
    graph_facts,
    int8_measured_speed_problem,
    int8_origin_problem,
    int8_report,
    int8_speed_problem,
    quantize_generator,
)

logger = logging.getLogger(__name__)


def onnx_patterns(backend: str, device: str | torch.device, precision: str, calibration: Any) -> list[str]:
    """The ONNX graphs worth fetching from a Hub repo: none unless they may run (onnxruntime on the CPU);
    ``model.onnx``, and ``model.int8.onnx`` unless ``precision`` rules it out (fp32, or "auto" on a CPU where
    int8 is not faster and no calibration asks for it)."""
    if backend == "torch" or torch.device(device).type != "cpu":
        return []
    if precision == "int8" or (precision == "auto" and (calibration is not None or int8_speed_problem() is None)):
        return [ONNX_NAME, INT8_ONNX_NAME]
    return [ONNX_NAME]


def inputs_digest(inputs: list[np.ndarray], min_psnr_db: float) -> str:
    """A short hash of calibration inputs and the gate: the name of a cached int8 graph built from them."""
    digest = hashlib.sha256(repr(float(min_psnr_db)).encode())
    for array in inputs:
        digest.update(repr(array.shape).encode())
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()[:16]


class OnnxEngine:
    """What ``generator`` runs as on onnxruntime (``runner``; None: torch), its int8 graph (``int8``, in use or
    not) and why int8 is not used (``note``). ``backend`` as ``Pix2Pix`` takes it."""

    def __init__(self, generator: nn.Module, backend: str) -> None:
        if backend == "onnxruntime" and not onnxruntime_available():
            raise ImportError("backend='onnxruntime' needs onnx and onnxruntime: pip install 'pix2pix-hub[onnx]'.")
        self.generator = generator
        self.backend = backend
        use_onnx = backend == "onnxruntime" or (backend == "auto" and onnxruntime_available())
        self.runner: OnnxGenerator | None = OnnxGenerator(generator) if use_onnx else None
        self.int8: PrebuiltGraph | None = None
        self.note: str | None = None
        self._fingerprint_memo: tuple[tuple[int, ...], str] = ((), "")

    # ----- what runs now ----------------------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return next(self.generator.parameters()).device

    @property
    def active(self) -> bool:
        """Whether a deterministic call runs on onnxruntime (a runner, and the generator on the CPU)."""
        return self.runner is not None and self.device.type == "cpu"

    def describe(self) -> str:
        """``"torch"``, ``"onnxruntime"`` (fp32) or ``"onnxruntime int8 (<PSNR> dB vs fp32, <speedup>x)"``."""
        return self.runner.describe() if self.active else "torch"

    @property
    def precision(self) -> str:
        return self.runner.precision if self.active else "fp32"

    def fall_back(self) -> None:
        """onnxruntime failed under ``backend="auto"``: torch from now on."""
        self.runner = None

    def fingerprint(self) -> str:
        """``weights_fingerprint`` of the generator, hashed again only after its weights change."""
        version = weights_version(self.generator)
        if self._fingerprint_memo[0] != version:
            self._fingerprint_memo = (version, weights_fingerprint(self.generator))
        return self._fingerprint_memo[1]

    def current_int8(self) -> PrebuiltGraph | None:
        """The int8 graph if the weights are still the ones it was made from (what ``save_pretrained`` ships)."""
        if self.int8 is None or self.fingerprint() != self.int8.fingerprint:
            return None
        return self.int8

    # ----- choosing at load time --------------------------------------------------------------------------------
    def choose(
        self,
        folder: Path,
        precision: str,
        calibration: CalibrationSource | None,
        build_into: Path | None,
        max_pixels: int,
    ) -> None:
        """Pick the graph (``Pix2Pix.from_pretrained``'s ``precision``): the folder's int8 graph, one built from
        ``calibration`` into ``build_into`` (None: the cache), or fp32 (the folder's ``model.onnx`` when it was
        made from these weights, else an export)."""
        shipped = folder / INT8_ONNX_NAME
        if precision != "fp32" and self._int8_possible(precision):
            if shipped.is_file():
                self._load_int8(shipped, precision)
            elif calibration is not None and (precision == "int8" or int8_speed_problem() is None):
                path = build_into / INT8_ONNX_NAME if build_into is not None else None
                try:
                    self.build_int8(calibration, path, max_pixels=max_pixels, precision=precision)
                except QuantizationQualityError as error:
                    if precision == "int8":
                        raise
                    self._say(f"no int8 graph: {error}; using fp32", logging.WARNING)
            elif calibration is not None:
                self._say(f"{int8_speed_problem()}; using fp32 (no int8 graph built)", logging.INFO)
            elif precision == "int8":
                raise FileNotFoundError(
                    f"precision='int8': {folder} has no {INT8_ONNX_NAME} and no calibration images were given to "
                    "build one. Pass calibration=<folder of typical inputs>, or make the file with `pix2pix-hub "
                    "export-onnx MODEL model.int8.onnx --int8 --calibration DIR` (or train with --export_int8)."
                )
        if self.precision == "fp32":
            self._use_shipped_fp32(folder / ONNX_NAME, precision)

    def _int8_possible(self, precision: str) -> bool:
        """Whether an int8 graph could run here (onnxruntime on the CPU); ``precision="int8"`` raises if not."""
        problem = None
        if self.runner is None:
            problem = "backend='torch' turns it off" if self.backend == "torch" else "onnxruntime is not installed"
        elif self.device.type != "cpu":
            problem = f"the model is on {self.device}"
        if problem is not None and precision == "int8":
            raise ValueError(f"precision='int8' runs the generator on onnxruntime on the CPU, but {problem}.")
        return problem is None

    def _load_int8(self, path: Path, precision: str) -> None:
        """Use the int8 graph at ``path`` if it is one, its stored report passed its gate and it records these
        weights' fingerprint; otherwise say why not and keep fp32 (``precision="int8"``: raise)."""
        metadata, kind = graph_facts(path)
        report = json.loads(metadata[REPORT_KEY]) if REPORT_KEY in metadata else None
        fingerprint = self.fingerprint()
        problem = int8_origin_problem(kind, report, metadata.get(FINGERPRINT_KEY), fingerprint)
        if problem is not None:
            if precision == "int8":
                raise ValueError(
                    f"precision='int8': {path} cannot be used: {problem}. Rebuild it from these weights: "
                    f"`pix2pix-hub export-onnx MODEL MODEL/{INT8_ONNX_NAME} --int8 --calibration DIR`."
                )
            self._say(f"{path.name} is not used: {problem}; using fp32", logging.WARNING)
            return
        self._adopt_int8(PrebuiltGraph(path, fingerprint, report), precision)

    def _use_shipped_fp32(self, path: Path, precision: str) -> None:
        """Run the fp32 graph at ``path`` instead of exporting, if it is one and was made from these weights. An
        int8 graph under that name is refused under ``precision="fp32"`` and exported over (one line) otherwise."""
        if self.runner is None or self.device.type != "cpu" or not path.is_file():
            return
        metadata, kind = graph_facts(path)
        if kind != "fp32":
            problem = f"{path} is an int8 graph (quantized), not the fp32 graph its name says"
            if precision == "fp32":
                raise ValueError(
                    f"precision='fp32': {problem}. Rename it to {INT8_ONNX_NAME} if it is this model's int8 graph, "
                    "or move it out of the folder (the weights are then exported)."
                )
            logger.warning("%s: exporting the weights instead.", problem)
            return
        fingerprint = self.fingerprint()
        if metadata.get(FINGERPRINT_KEY) != fingerprint:
            logger.info("%s was not made from these weights (or records none): exporting them instead.", path)
            return
        self.runner = OnnxGenerator(self.generator, PrebuiltGraph(path, fingerprint))

    # ----- building an int8 graph ---------------------------------------------------------------------------------
    def build_int8(
        self,
        calibration: CalibrationSource,
        path: str | os.PathLike | None,
        *,
        max_pixels: int,
        count: int = DEFAULT_NUM_CALIBRATION,
        min_psnr: float = DEFAULT_MIN_PSNR_DB,
        precision: str = "auto",
    ) -> dict[str, Any]:
        """``Pix2Pix.quantize``'s work (its docstring says what: ``quantize.quantize_generator``), then
        ``_adopt_int8`` under ``precision``. A graph built earlier into the cache for the same weights, inputs and
        threshold is reused."""
        if self.device.type != "cpu":
            raise ValueError(f"Quantizing exports the generator on the CPU; the model is on {self.device}: .to('cpu').")
        inputs = calibration_inputs(calibration, self.generator.in_channels, count, max_pixels)
        fingerprint = self.fingerprint()
        if path is None:
            path = default_cache_dir() / f"int8-{fingerprint}-{inputs_digest(inputs, min_psnr)}.onnx"
            if not path.is_file():
                quantize_generator(self.generator, path, inputs, min_psnr_db=min_psnr, fingerprint=fingerprint)
                prune_cache(path.parent)
        else:
            quantize_generator(self.generator, path, inputs, min_psnr_db=min_psnr, fingerprint=fingerprint)
        path = Path(path)
        graph = PrebuiltGraph(path, fingerprint, int8_report(path))
        self._adopt_int8(graph, precision)
        return {**graph.report, "path": str(path), "bytes": path.stat().st_size}

    def _adopt_int8(self, graph: PrebuiltGraph, precision: str) -> None:
        """Keep ``graph`` as the int8 graph and run it, unless ``precision`` is ``"auto"`` and int8 is not faster:
        a CPU without VNNI or AMX, or a report that measured it no faster (then fp32, with a note); ``"int8"`` runs
        it anyway, with a note."""
        self.int8 = graph
        slow = int8_speed_problem() or int8_measured_speed_problem(graph.report)
        if slow is not None and precision == "auto":
            self._say(f"{slow}; using fp32", logging.INFO)
            return
        if slow is not None:
            self._say(f"{slow}; using int8 as asked", logging.WARNING)
        if self.runner is not None:
            self.runner = OnnxGenerator(self.generator, graph)

    def _say(self, message: str, level: int) -> None:
        self.note = message
        logger.log(level, message)
