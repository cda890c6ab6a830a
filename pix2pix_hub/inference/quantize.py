"""int8 inference on CPU: calibrated static quantization with a quality gate, and the rules that decide whether a
model's int8 graph runs.

``quantize_generator`` is the one way an int8 file is made (``Pix2Pix.quantize``, ``from_pretrained`` with
``calibration``, ``export-onnx --int8`` and ``--export_int8`` at the end of training all come here): it exports the
generator to fp32 ONNX and hands the graph to ``quantize_int8``, which rewrites it (``onnx_rewrite.subpixel_rewrite``,
so its transposed convolutions quantize), calibrates on real inputs (``calibration.calibration_inputs`` reads them),
then refuses the int8 model (and writes nothing) when its outputs are further from the fp32 outputs than
``min_psnr_db`` on held-back inputs; the measured figure is stored in the file's metadata (``int8_report``) with
how fast int8 ran next to fp32 there (``speedup_vs_fp32``). ``onnx`` and ``onnxruntime`` are imported on use only.

Whether a model may use an int8 file follows ``int8_origin_problem``: it is an int8 graph (``graph_facts``), its
stored report passed its gate (``int8_quality_problem``) and it records these weights' fingerprint. Whether it is
worth running is measured on the machine that runs it (``speed_choice``), not read from the CPU's flags
(``int8_is_fast`` is a hint for reports only) nor from the file's ``speedup_vs_fp32`` (measured where it was made).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import statistics
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from ..constants import FINGERPRINT_KEY, ONNX_NAME
from ..fileio import write_bytes
from ..images.metrics import psnr_per_image
from ..performance import cpu_capabilities
from .calibration import model_input
from .export import check_graph_name, export_onnx, onnx_session
from .onnx_engine import cpu_generator, weights_fingerprint
from .onnx_rewrite import subpixel_rewrite
from .processor import pad_to_multiple

if TYPE_CHECKING:
    import onnx

REPORT_KEY = "int8_report"  # metadata_props key of the quantization report (JSON)
DEFAULT_MIN_PSNR_DB = 40.0
# The speed check after the gate: untimed runs of each engine, then the median of timed runs, each right after an
# untimed run of the same engine; few runs, as quantizing should not take much longer than calibrating.
SPEED_WARMUP_RUNS = 2
SPEED_TIMED_RUNS = 5


class QuantizationQualityError(RuntimeError):
    """The int8 model's outputs are further from the fp32 model's than the PSNR threshold allows."""

    def __init__(self, message: str, psnr_db: float) -> None:
        super().__init__(message)
        self.psnr_db = psnr_db  # the measured figure (worst held-out image)


# --- calibrated static int8 quantization ---------------------------------------------------------------------


def quantize_generator(
    generator: nn.Module,
    path: str | os.PathLike,
    inputs: Sequence[Any],
    *,
    min_psnr_db: float = DEFAULT_MIN_PSNR_DB,
    fingerprint: str | None = None,
) -> dict[str, Any]:
    """Write the int8 graph of ``generator``'s current weights to ``path``: export, rewrite, calibrate, gate.

    Args:
        generator: one of this package's generators, anywhere (a CPU copy is exported; the model never moves).
        path: the int8 file; it appears only once complete, and only past the gate.
        inputs: real model inputs at their own sizes (``calibration.calibration_inputs``, or the training data's
            ``(C, H, W)`` inputs); they are padded here to the generator's ``size_multiple`` and ``min_size``.
        min_psnr_db: the quality gate of ``quantize_int8``.
        fingerprint: the weights' ``weights_fingerprint``, recorded in the file (None: computed here).

    Returns:
        ``quantize_int8``'s report, with ``path`` and ``bytes``.

    Raises:
        QuantizationQualityError: the int8 outputs fail the gate; nothing is written.
        ValueError: ``path`` is named ``model.onnx``, the fp32 graph's name (``export.check_graph_name``).
    """
    check_graph_name(path, "int8")
    channels, multiple, min_size = generator.in_channels, generator.size_multiple, generator.min_size
    padded = [pad_to_multiple(model_input(item, channels), multiple, min_size)[0] for item in inputs]
    fingerprint = weights_fingerprint(generator) if fingerprint is None else fingerprint
    with tempfile.TemporaryDirectory() as scratch, cpu_generator(generator) as cpu:
        fp32_path = Path(scratch) / ONNX_NAME
        # No parity check: the gate compares the int8 graph with this very fp32 graph.
        export_onnx(cpu, fp32_path, check=False)
        return quantize_int8(fp32_path, path, padded, min_psnr_db=min_psnr_db, fingerprint=fingerprint)


def quantize_int8(
    fp32_onnx_path: str | os.PathLike,
    out_path: str | os.PathLike,
    calibration_inputs: Sequence[Any],
    *,
    held_out: int | None = None,
    min_psnr_db: float = DEFAULT_MIN_PSNR_DB,
    fingerprint: str | None = None,
) -> dict[str, Any]:
    """Write an int8 version of the fp32 generator graph at ``fp32_onnx_path`` to ``out_path``; return its report.

    The graph is rewritten to sub-pixel form, then quantized statically (QDQ; uint8 activations, MinMax ranges;
    int8 weights per output channel). Past the gate both graphs are timed on the held-out inputs.

    Args:
        fp32_onnx_path: the exported fp32 graph.
        out_path: the int8 file; it appears only once complete.
        calibration_inputs: real model inputs at a size the model takes, each a uint8 image ``(H, W, C)`` or
            ``(H, W)`` (numpy or PIL) or a float array ``(C, H, W)`` / ``(1, C, H, W)`` in [-1, 1].
        held_out: how many of the last inputs are kept out of calibration for the gate (default a quarter, at
            least one).
        min_psnr_db: the gate: the worst held-out image's PSNR of the int8 outputs from the fp32 graph's.
        fingerprint: the weights' hash (``onnx_engine.weights_fingerprint``), stored under ``FINGERPRINT_KEY``.

    Returns:
        The report, also stored in the file's metadata where ``int8_report`` reads it back: ``psnr_db`` (the
        worst held-out image), ``psnr_db_mean``, ``max_abs_diff_levels`` (in steps of 1/255 of the output range),
        the counts and the threshold; ``fp32_median_ms``, ``int8_median_ms`` and their ratio ``speedup_vs_fp32``
        measured on this CPU; plus ``path`` and ``bytes``.

    Raises:
        QuantizationQualityError: the worst held-out image is below ``min_psnr_db``; it carries the figure, and
            nothing is written.
    """
    import onnx

    check_graph_name(out_path, "int8")
    fp32_session = onnx_session(fp32_onnx_path)
    channels = fp32_session.get_inputs()[0].shape[1]
    calibration, gate = _split_gate([model_input(item, channels) for item in calibration_inputs], held_out)
    model = subpixel_rewrite(onnx.load(fp32_onnx_path))
    with tempfile.TemporaryDirectory() as scratch:
        int8_path = Path(scratch) / "int8.onnx"
        _quantize_static(model, Path(scratch), int8_path, calibration)
        int8_session = onnx_session(int8_path)
        report = {**_compare(fp32_session, int8_session, gate), **_settings(len(calibration), min_psnr_db)}
        _check_gate(report, out_path)
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


def _split_gate(inputs: list[np.ndarray], held_out: int | None) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The calibration inputs and the last ``held_out`` (default a quarter, at least one) for the gate."""
    held_out = max(1, len(inputs) // 4) if held_out is None else held_out
    if not 1 <= held_out < len(inputs):
        raise ValueError(
            f"held_out={held_out} must leave at least one of the {len(inputs)} calibration inputs for calibration "
            "and hold back at least one for the quality gate."
        )
    return inputs[:-held_out], inputs[-held_out:]


def _settings(calibration_count: int, min_psnr_db: float) -> dict[str, Any]:
    """How the graph was quantized, as the report records it."""
    return {
        "calibration_inputs": calibration_count,
        "min_psnr_db": float(min_psnr_db),
        "format": "QDQ",
        "activations": "uint8 per tensor",
        "weights": "int8 per output channel",
    }


def _check_gate(report: dict[str, Any], out_path: str | os.PathLike) -> None:
    """``QuantizationQualityError`` with the figure when the worst held-out PSNR is below the report's gate."""
    if not report["psnr_db"] >= report["min_psnr_db"]:
        raise QuantizationQualityError(
            f"The int8 model's outputs are {report['psnr_db']:.1f} dB PSNR from the fp32 model's on the worst of "
            f"{report['held_out_inputs']} held-out inputs, below the {report['min_psnr_db']:g} dB threshold; "
            f"{out_path} was not written. Calibrate on more (and more typical) real inputs, or keep fp32.",
            report["psnr_db"],
        )


def int8_report(path: str | os.PathLike) -> dict[str, Any] | None:
    """The quantization report stored in the ONNX file at ``path`` (``psnr_db`` and the rest), None if it has
    none (an fp32 graph, or an int8 one not made by ``quantize_int8``)."""
    report = onnx_metadata(path).get(REPORT_KEY)
    return None if report is None else json.loads(report)


def onnx_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The ``metadata_props`` of the ONNX file at ``path`` (never reading external data)."""
    return graph_facts(path)[0]


# Operators only a quantized graph holds: an int8 graph is told from an fp32 one even when its metadata is gone.
QUANTIZED_OPS = frozenset(
    {"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "QLinearConv", "QLinearMatMul", "ConvInteger"}
)


def graph_facts(path: str | os.PathLike) -> tuple[dict[str, str], str]:
    """The ``metadata_props`` of the ONNX file at ``path`` and what it is: ``"int8"`` when it holds an int8 report
    or quantized operators (``QUANTIZED_OPS``), else ``"fp32"``. One read, never of external data."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    metadata = {entry.key: entry.value for entry in model.metadata_props}
    quantized = REPORT_KEY in metadata or any(node.op_type in QUANTIZED_OPS for node in model.graph.node)
    return metadata, "int8" if quantized else "fp32"


def int8_quality_problem(report: dict[str, Any] | None) -> str | None:
    """Why an int8 graph with this stored report must not be used (one clause), or None when it passed its gate."""
    if report is None:
        return "it has no quality report (it was not made by quantize_int8), so its outputs are unchecked"
    if not report.get("psnr_db", -np.inf) >= report.get("min_psnr_db", DEFAULT_MIN_PSNR_DB):
        return (
            f"its outputs are {report.get('psnr_db')} dB from fp32's, below its gate of {report.get('min_psnr_db')} dB"
        )
    return None


def int8_origin_problem(kind: str, report: dict[str, Any] | None, recorded: str | None, fingerprint: str) -> str | None:
    """Why a model folder's int8 file must not run for weights of ``fingerprint`` (one clause), or None.

    Args:
        kind: the file's kind by its contents (``graph_facts``).
        report: its stored quantization report (None: none).
        recorded: the weights fingerprint it records (None: none).
        fingerprint: the loaded weights' ``weights_fingerprint``.

    Returns:
        None when it is an int8 graph that passed its gate and records these weights; else the reason. A file
        recording no fingerprint cannot be shown to come from these weights (another model's, copied over, runs
        just as well), so it is refused rather than trusted.
    """
    if kind != "int8":
        return f"it is an {kind} graph (no quantized operators), not the int8 graph its name says"
    problem = int8_quality_problem(report)
    if problem is None and recorded is None:
        problem = (
            "it records no weights fingerprint (an older export, or its metadata was stripped), so it cannot be "
            "shown to come from these weights"
        )
    elif problem is None and recorded != fingerprint:
        problem = "it was made from other weights than this model's"
    return problem


def _quantize_static(model: onnx.ModelProto, scratch: Path, out_path: Path, calibration: list[np.ndarray]) -> None:
    """onnxruntime's static quantization of ``model``, calibrated on ``calibration`` (float32 NCHW inputs)."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    fp32_path = scratch / "subpixel.onnx"
    onnx.save(model, fp32_path)
    inputs = [(item.name, item.type.tensor_type.shape.dim[1].dim_value) for item in model.graph.input]
    reader = _CalibrationReader([graph_feeds(inputs, array, index) for index, array in enumerate(calibration)])
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


def graph_feeds(inputs: Sequence[tuple[str, int]], array: np.ndarray, index: int) -> dict[str, np.ndarray]:
    """The feeds of one run of a graph.

    Args:
        inputs: the graph's inputs as ``(name, size of axis 1)``.
        array: the first input, ``(N, C, H, W)``.
        index: which style code a style-code input (a SPADE generator with a style encoder: ``export.STYLE_NAME``,
            ``(N, z_dim)``) gets: 0 the zero code (the default), else N(0, I) drawn with this seed, so that
            calibration and the gate see the codes users pick.

    Returns:
        ``{name: array}`` for every input.
    """
    feeds = {inputs[0][0]: array}
    if len(inputs) > 1:
        name, dim = inputs[1]
        rng = np.random.default_rng(index)
        code = np.zeros((1, dim)) if index == 0 else rng.standard_normal((1, dim))
        feeds[name] = np.ascontiguousarray(np.broadcast_to(code, (len(array), dim)), dtype=np.float32)
    return feeds


def session_inputs(session: Any) -> list[tuple[str, int]]:
    """An onnxruntime session's inputs as ``graph_feeds`` takes them: ``(name, size of axis 1)``."""
    return [(item.name, item.shape[1]) for item in session.get_inputs()]


def _compare(fp32_session: Any, int8_session: Any, inputs: list[np.ndarray]) -> dict[str, Any]:
    """PSNR (dB, per image) and the largest difference of the int8 outputs from the fp32 outputs."""
    names = session_inputs(fp32_session)
    psnrs, worst_diff = [], 0.0
    for index, array in enumerate(inputs):
        feeds = graph_feeds(names, array, index + 1)
        expected = fp32_session.run(None, feeds)[0]
        actual = int8_session.run(None, feeds)[0]
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
    names = session_inputs(fp32_session)
    for _ in range(SPEED_WARMUP_RUNS):
        for session in sessions.values():
            session.run(None, graph_feeds(names, inputs[0], 0))
    times: dict[str, list[float]] = {key: [] for key in sessions}
    for index in range(SPEED_TIMED_RUNS):
        feeds = graph_feeds(names, inputs[index % len(inputs)], 0)
        for key, session in sessions.items():
            session.run(None, feeds)  # untimed: the timed run below finds warm caches
            start = time.perf_counter()
            session.run(None, feeds)
            times[key].append(time.perf_counter() - start)
    fp32_ms, int8_ms = (1000 * statistics.median(times[key]) for key in sessions)
    return {
        "fp32_median_ms": round(fp32_ms, 3),
        "int8_median_ms": round(int8_ms, 3),
        "speedup_vs_fp32": round(fp32_ms / int8_ms, 2),
    }


def int8_is_fast(capabilities: dict[str, Any] | None = None) -> bool:
    """Whether the CPU has int8 dot-product instructions (VNNI or AMX), for reports. A hint only: int8 also wins
    without them on wide models, and loses with them on thin ones (docs/performance.md), so ``precision="auto"``
    decides by timing both engines here (``speed_choice``), never by this."""
    capabilities = cpu_capabilities() if capabilities is None else capabilities
    return bool(capabilities["avx512_vnni"] or capabilities["avx_vnni"] or capabilities["amx_int8"])
