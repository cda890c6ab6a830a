"""Which graph ``Pix2Pix`` runs on onnxruntime, and why: int8 or fp32.

``OnnxEngine`` holds that choice for one generator: an int8 graph (a model folder's ``model.int8.onnx``, or one
built from calibration images), else fp32 (the folder's ``model.onnx`` when it is an fp32 graph made from these
weights, else an export on first use); ``note`` says in one line why int8 is not used (or is used although slower
here), also logged. Under ``from_pretrained``'s defaults the choice is deferred (``defer``): calls run torch until a
background thread, started after the first answer, has checked and opened the fp32 graph (or exported the weights),
then fp32 onnxruntime; where the folder ships ``model.int8.onnx`` the same thread then checks it and times it against
fp32, switching to int8 once it measured faster.

    engine = OnnxEngine(generator, backend="auto", resolution=256)
    engine.choose(folder, "auto", calibration=None, build_into=None, max_pixels=4096 * 4096)
    engine.runner        # the OnnxGenerator a call runs (None: torch)
    engine.speed         # the int8-vs-fp32 measurement on this machine (speed_choice.SpeedMeasurement) or None
    engine.describe()    # "onnxruntime int8 (<PSNR> dB vs fp32, <speed-up>x fp32's speed on this CPU)"

An int8 graph is used only when it is one (``quantize.graph_facts``), its stored quality report passed its gate and
it records these weights' fingerprint (``quantize.int8_origin_problem``); under ``"auto"`` also only where it ran
faster than fp32 on this machine, at the model's own input size (``speed_choice``: timed once per machine, weights
and onnxruntime version, then read back). The CPU's flags and the speed-up stored in the file play no part.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import threading
import warnings
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
    int8_origin_problem,
    int8_report,
    quantize_generator,
)
from .speed_choice import SpeedMeasurement, choice_key, measure_shape, measure_speed, recall

logger = logging.getLogger(__name__)

# Whether ``from_pretrained`` checks and times a shipped int8 graph in the background, after the first answer
# (False: at load, before it; tests of the choice itself turn it off).
BACKGROUND_CHOICE = True


def onnx_patterns(backend: str, device: str | torch.device, precision: str, calibration: Any) -> list[str]:
    """The ONNX graphs worth fetching from a Hub repo: none unless they may run (onnxruntime on the CPU);
    ``model.onnx``, and ``model.int8.onnx`` unless ``precision="fp32"`` rules it out. Under ``"auto"`` only a
    measurement here says whether int8 pays, so it is fetched on every CPU; ``calibration`` does not change that."""
    if backend == "torch" or torch.device(device).type != "cpu":
        return []
    return [ONNX_NAME] if precision == "fp32" else [ONNX_NAME, INT8_ONNX_NAME]


def onnxruntime_problem(device: str | torch.device, dtype: torch.dtype = torch.float32) -> str | None:
    """Why onnxruntime cannot run a generator on ``device`` with weights of ``dtype`` (it runs float32 graphs on
    the CPU), or None when it can."""
    device = torch.device(device)
    if device.type != "cpu":
        return f"the model is on {device}"
    if dtype != torch.float32:
        return f"the model's weights are {str(dtype).removeprefix('torch.')}, not float32"
    return None


def check_device(backend: str, precision: str, device: str | torch.device, dtype: torch.dtype = torch.float32) -> None:
    """Refuse what cannot run on ``device``: ``backend="onnxruntime"`` and ``precision="int8"`` are CPU float32
    paths (``"auto"`` runs torch elsewhere)."""
    problem = onnxruntime_problem(device, dtype)
    if problem is None:
        return
    if precision == "int8":
        raise ValueError(f"precision='int8' runs the generator on onnxruntime on the CPU, but {problem}.")
    if backend == "onnxruntime":
        raise ValueError(
            f"backend='onnxruntime' runs the generator on the CPU in float32, but {problem}: use backend='torch' "
            "(or 'auto') there, or move the model with .to('cpu').float()."
        )


def inputs_digest(inputs: list[np.ndarray], min_psnr_db: float) -> str:
    """A short hash of calibration inputs and the gate: the name of a cached int8 graph built from them."""
    digest = hashlib.sha256(repr(float(min_psnr_db)).encode())
    for array in inputs:
        digest.update(repr(array.shape).encode())
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()[:16]


class OnnxEngine:
    """What ``generator`` runs as on onnxruntime (``runner``; None: torch), its int8 graph (``int8``, in use or
    not), int8 against fp32 as measured here (``speed``) and why int8 is not used (``note``). ``backend`` as
    ``Pix2Pix`` takes it; ``resolution``: the side the two are timed at (the model's, from ``pix2pix.json``)."""

    def __init__(self, generator: nn.Module, backend: str, resolution: int | None = None) -> None:
        if backend == "onnxruntime" and not onnxruntime_available():
            raise ImportError("backend='onnxruntime' needs onnx and onnxruntime: pip install 'pix2pix-hub[onnx]'.")
        self.generator = generator
        self.backend = backend
        use_onnx = backend == "onnxruntime" or (backend == "auto" and onnxruntime_available())
        self.runner: OnnxGenerator | None = OnnxGenerator(generator) if use_onnx else None
        self.int8: PrebuiltGraph | None = None
        self.note: str | None = None
        self.resolution = resolution  # the side int8 and fp32 are timed at (None: speed_choice's default)
        self.speed: SpeedMeasurement | None = None
        self._fingerprint_memo: tuple[tuple[int, ...], str] = ((), "")
        self.check_runnable()
        # Set by ``defer``: the fp32 session is prepared in a background thread while torch answers calls.
        self.deferred = False
        self.measuring = False  # a deferred int8 graph not yet checked and timed against fp32
        self._shipped: Path | None = None
        self._int8_file: Path | None = None
        self._job: threading.Thread | None = None
        self._job_error: Exception | None = None
        self._opened = threading.Event()  # the deferred fp32 session is open: calls may run it

    # ----- what runs now ----------------------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return next(self.generator.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.generator.parameters()).dtype

    @property
    def active(self) -> bool:
        """Whether a deterministic call runs on onnxruntime (a runner, and the generator on the CPU in float32)."""
        return self.runner is not None and onnxruntime_problem(self.device, self.dtype) is None

    def check_runnable(self) -> None:
        """Raise where ``backend="onnxruntime"`` cannot run (the generator moved off the CPU, or to half precision)
        rather than run torch in its place."""
        if self.backend == "onnxruntime":
            check_device(self.backend, "auto", self.device, self.dtype)

    def describe(self) -> str:
        """``"torch"``, ``"onnxruntime"`` (fp32) or ``"onnxruntime int8 (<PSNR> dB vs fp32, <speed-up>x fp32's speed
        on this CPU)"`` (``PrebuiltGraph.describe``), with ``" (measuring int8 against fp32 on this CPU)"`` while a
        deferred int8 graph waits for its check and timing."""
        if not self.active:
            return "torch"
        engine = self.runner.describe()
        return f"{engine} (measuring int8 against fp32 on this CPU)" if self.measuring else engine

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
        """The int8 graph if the weights are still the ones it was made from (what ``save_pretrained`` ships); a
        deferred one is checked (and timed) first."""
        if self.measuring:
            self.wait_until_ready()
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
        defer: bool = False,
    ) -> None:
        """Pick the graph (``Pix2Pix.from_pretrained``'s ``precision``): the folder's int8 graph, one built from
        ``calibration`` into ``build_into`` (None: the cache), or fp32 (the folder's ``model.onnx`` when it is an
        fp32 graph made from these weights, else an export). Under ``"auto"`` int8 runs where it measured faster.

        Args:
            folder, precision, calibration, build_into, max_pixels: as above (``from_pretrained``'s).
            defer: under ``"auto"`` without calibration, check and open the graphs in the background instead,
                after the first answer (``defer``), timing a shipped int8 graph there too.
        """
        shipped_int8 = folder / INT8_ONNX_NAME if (folder / INT8_ONNX_NAME).is_file() else None
        later = calibration is None and (shipped_int8 is None or BACKGROUND_CHOICE)
        if defer and precision == "auto" and self.backend == "auto" and later and self.active:
            self.defer(folder / ONNX_NAME if (folder / ONNX_NAME).is_file() else None, shipped_int8)
            return
        if precision != "int8":  # first: timing int8 against fp32 needs no export where the folder ships fp32
            self._use_shipped_fp32(folder / ONNX_NAME, precision)
        if precision == "fp32" or not self._int8_possible(precision):
            return
        shipped = folder / INT8_ONNX_NAME
        if shipped.is_file():
            self._load_int8(shipped, precision)
        elif calibration is not None:
            path = build_into / INT8_ONNX_NAME if build_into is not None else None
            try:
                self.build_int8(calibration, path, max_pixels=max_pixels, precision=precision)
            except QuantizationQualityError as error:
                if precision == "int8":
                    raise
                self._say(f"no int8 graph: {error}; using fp32", logging.WARNING)
        elif precision == "int8":
            raise FileNotFoundError(
                f"precision='int8': {folder} has no {INT8_ONNX_NAME} and no calibration images were given to "
                "build one. Pass calibration=<folder of typical inputs>, or make the file with `pix2pix-hub "
                "export-onnx MODEL model.int8.onnx --int8 --calibration DIR` (or train with --export_int8)."
            )

    # ----- a fast first call: torch answers while onnxruntime is prepared ---------------------------------------
    def defer(self, shipped: Path | None, int8: Path | None = None) -> None:
        """Run calls in torch until the fp32 session is ready: the first ``Pix2Pix`` call, once it has answered,
        starts preparing it in a background thread (``start_preparing``), so that neither the check, the export
        nor onnxruntime's start delays the first image. With ``int8``, the thread then checks that graph and times
        it against fp32 (``_load_int8``; read back where this machine measured it before), calls meanwhile running
        fp32 onnxruntime, taking turns with the timed calls; it switches to int8 where int8 measured faster.

        Args:
            shipped: a folder's ``model.onnx``, checked there and opened if made from these weights; None (or a
                graph of other weights): the weights are exported (or read from the cache).
            int8: a folder's ``model.int8.onnx``, or None.
        """
        self.deferred, self._shipped, self._int8_file, self.measuring = True, shipped, int8, int8 is not None
        self._job, self._job_error = None, None
        self._opened.clear()

    def ready(self) -> bool:
        """Whether a deterministic call may run on onnxruntime now: always, unless its session is still being
        prepared (``defer``). A preparation that failed is a warning, and torch from then on."""
        if not self.deferred or self._job is None or self._job.is_alive():
            return not self.deferred or self._opened.is_set()
        self.deferred = False
        if self._job_error is not None:
            warnings.warn(f"onnxruntime could not run this generator ({self._job_error}); using torch.", stacklevel=4)
            self.fall_back()
            return False
        return True

    def start_preparing(self) -> None:
        """Start the background preparation ``defer`` set up, once."""
        if self.deferred and self._job is None and self.active:  # not for a model moved off the CPU since
            # Not a daemon: a process ending mid-export aborts inside torch; this one waits for it (then cached).
            self._job = threading.Thread(target=self._prepare, name="pix2pix-hub-onnx", daemon=False)
            self._job.start()

    def wait_until_ready(self, timeout: float | None = None) -> bool:
        """Wait for the background preparation (if any), a deferred int8 graph's check and timing included;
        returns ``ready()``."""
        self.start_preparing()
        if self._job is not None:
            self._job.join(timeout)
        return self.ready()

    def _prepare(self) -> None:
        try:
            if self._shipped is not None:
                self._use_shipped_fp32(self._shipped, "auto")
            self.runner.open_session()
        except Exception as error:  # noqa: BLE001 - reported by ready() in the calling thread
            self._job_error, self.measuring = error, False
            return
        self._opened.set()
        if self._int8_file is None:
            return
        try:
            self._load_int8(self._int8_file, "auto")
        except Exception as error:  # noqa: BLE001 - fp32 runs on; the note says why
            self._say(f"could not check or time {self._int8_file.name} ({error}); using fp32", logging.WARNING)
        finally:
            self.measuring = False

    def _int8_possible(self, precision: str) -> bool:
        """Whether an int8 graph could run here (onnxruntime on the CPU); ``precision="int8"`` raises if not."""
        problem = None
        if self.runner is None:
            problem = "backend='torch' turns it off" if self.backend == "torch" else "onnxruntime is not installed"
        else:
            problem = onnxruntime_problem(self.device, self.dtype)
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
        if self.runner is None or not self.active or not path.is_file():
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
        if self.deferred:  # its background choice first: it would replace this graph's otherwise
            self.wait_until_ready()
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
        """Keep ``graph`` as the int8 graph and run it, unless ``precision`` is ``"auto"`` and it was not faster than
        fp32 on this machine (``speed_choice``; then fp32, with a note). ``"int8"`` runs it without timing, with a
        note where an earlier measurement here found it slower."""
        self.int8, self.note, self.speed = graph, None, None
        if self.runner is None or not self.active:  # kept for save_pretrained to ship
            return
        int8_runner = OnnxGenerator(self.generator, graph)
        speed = self._measure(int8_runner, graph, time_now=precision == "auto")
        if speed is None and precision == "auto":
            return
        if speed is not None:
            self.speed = speed
            self.int8 = int8_runner.graph = dataclasses.replace(graph, speedup_here=speed.speedup)
            if speed.chosen == "fp32" and precision == "auto":
                self._say(f"{speed.describe()}; using fp32", logging.INFO)
                return
            if speed.chosen == "fp32":
                self._say(f"{speed.describe()}; using int8 as asked", logging.WARNING)
            else:
                logger.info("%s; using int8", speed.describe())
        self.runner = int8_runner

    def _measure(self, int8_runner: OnnxGenerator, graph: PrebuiltGraph, time_now: bool) -> SpeedMeasurement | None:
        """int8 against fp32 on this machine: read back (``speed_choice``), else timed now when ``time_now``. A
        failure to time is a note (fp32 stays) under ``backend="auto"`` and raised under ``"onnxruntime"``."""
        generator = self.generator
        shape = measure_shape(generator.in_channels, self.resolution, generator.size_multiple, generator.min_size)
        key = choice_key(self.fingerprint(), graph.report, shape, torch.get_num_threads())
        if not time_now:
            return recall(key)
        fp32 = self.runner if self.runner is not None and self.runner.precision == "fp32" else None
        fp32 = fp32 or OnnxGenerator(generator)
        fp32.turn = turn = threading.Lock()  # calls answered meanwhile (background timing) wait for a round's end
        try:
            return measure_speed(fp32.open_session(), int8_runner.open_session(), shape, key, turn=turn)
        except (RuntimeError, OSError, ValueError) as error:
            if self.backend == "onnxruntime":
                raise
            self._say(f"could not time int8 against fp32 on this CPU ({error}); using fp32", logging.WARNING)
            return None
        finally:
            fp32.turn = contextlib.nullcontext()

    def _say(self, message: str, level: int) -> None:
        self.note = message
        logger.log(level, message)
