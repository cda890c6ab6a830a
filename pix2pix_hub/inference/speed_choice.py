"""int8 or fp32 under ``precision="auto"``: whichever ran faster on this machine, measured once and remembered.

The int8 graph's stored ``speedup_vs_fp32`` was measured on the machine that quantized it; the CPU that runs it may
differ both ways (VNNI is not needed for int8 to win, nor enough: thin models lose). So once a usable int8 graph is
at hand (past its quality gate, made from these weights), ``measure_speed`` times the fp32 and int8 onnxruntime
sessions on the model's own input size (at most ``MAX_MEASURE_SIDE``), batch 1: one warm-up call each, then a few
timed calls each, alternating, each after an untimed call of the same engine, within ``MEASURE_BUDGET_S`` (on a
model whose warm-up calls alone exceed it, those calls are the measurement).

The answer is kept in the ONNX cache (``onnx_engine.default_cache_dir()``, file ``CHOICES_NAME``), keyed by the CPU's
model name (``performance.cpu_name``), the onnxruntime version, the weights' fingerprint, the int8 graph's report,
the input shape and the thread count: the next process on this machine reads it instead of timing again, and a
change of any of them measures again. CPU flags play no part in the choice.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..fileio import write_json
from ..performance import cpu_name
from .onnx_engine import default_cache_dir

CHOICES_NAME = "precision-choices.json"  # in the ONNX cache folder
CHOICES_KEEP = 64  # the most recently measured choices kept
MEASURE_BUDGET_S = 2.0  # no round of timed calls starts that would end past it
MEASURE_CALLS = 3  # timed calls of each engine at most
DEFAULT_MEASURE_SIDE = 256  # the input side when the model records no resolution
# Larger models are timed at this side: one fp32 call of a 1024-pixel model takes seconds on a few cores, and int8's
# ratio to fp32 changes little with the size (docs/performance.md).
MAX_MEASURE_SIDE = 512
# int8 runs only where it measured more than this many times as fast as fp32: a few calls cannot tell apart
# engines closer than that, and then fp32 (exact) is the better pick.
MIN_INT8_SPEEDUP = 1.1


@dataclass(frozen=True)
class SpeedMeasurement:
    """Milliseconds per call of each engine on one input ``shape``; ``cached``: read back, not timed now."""

    fp32_ms: float
    int8_ms: float
    calls: int
    shape: tuple[int, ...]
    cpu: str
    onnxruntime: str
    cached: bool = False

    @property
    def speedup(self) -> float:
        """fp32's time over int8's: above 1, int8 is faster."""
        return self.fp32_ms / self.int8_ms

    @property
    def chosen(self) -> str:
        """``"int8"`` when it ran more than ``MIN_INT8_SPEEDUP`` times as fast as fp32, else ``"fp32"``."""
        return "int8" if self.speedup > MIN_INT8_SPEEDUP else "fp32"

    def describe(self) -> str:
        """One clause: ``int8 measured 2.04x the speed of fp32 on this CPU (<name>, onnxruntime <v>, 1x3x256x256:
        int8 12.1 ms, fp32 24.7 ms, 3 calls each)``, ``measured earlier`` when it was read back."""
        shape = "x".join(map(str, self.shape))
        when = ", measured earlier" if self.cached else ""
        return (
            f"int8 measured {self.speedup:.2f}x the speed of fp32 on this CPU ({self.cpu}, onnxruntime "
            f"{self.onnxruntime}, {shape}: int8 {self.int8_ms:.1f} ms, fp32 {self.fp32_ms:.1f} ms, {self.calls} "
            f"call{'s' if self.calls != 1 else ''} each{when})"
        )


def measure_shape(in_channels: int, side: int | None, size_multiple: int, min_size: int) -> tuple[int, ...]:
    """The timing input: batch 1, ``side`` (the model's resolution; ``DEFAULT_MEASURE_SIDE`` when None; at most
    ``MAX_MEASURE_SIDE``) rounded up to the generator's size multiple and at least its ``min_size``."""
    side = max(min(int(side or DEFAULT_MEASURE_SIDE), MAX_MEASURE_SIDE), int(min_size))
    side = size_multiple * -(-side // size_multiple)
    return (1, in_channels, side, side)


def measure_speed(
    fp32_session: Any, int8_session: Any, shape: tuple[int, ...], key: str, turn: Any = None
) -> SpeedMeasurement:
    """The measurement stored under ``key`` (``choice_key``) on this machine, else timed now and stored.

    Args:
        fp32_session, int8_session: the onnxruntime sessions ``Pix2Pix`` would run.
        shape: the input (``measure_shape``).
        key: what the measurement depends on (``choice_key``).
        turn: held during each round of calls (``time_sessions``); None: nothing to hold.

    Returns:
        The measurement; ``cached`` says whether it was read back.
    """
    import onnxruntime

    remembered = recall(key)
    if remembered is not None:
        return remembered
    array = np.random.default_rng(0).uniform(-1, 1, shape).astype(np.float32)
    fp32_ms, int8_ms, calls = time_sessions(fp32_session, int8_session, array, turn=turn)
    measured = SpeedMeasurement(fp32_ms, int8_ms, calls, tuple(shape), cpu_name(), onnxruntime.__version__)
    remember(key, measured)
    return measured


def time_sessions(
    fp32_session: Any, int8_session: Any, array: np.ndarray, budget_s: float = MEASURE_BUDGET_S, turn: Any = None
) -> tuple[float, float, int]:
    """Time both sessions on ``array``.

    One untimed call each first (memory arenas, kernel choice); then rounds in which each engine makes an untimed
    call and a timed one, so that a timed call never competes with the other engine's worker threads still
    spinning after its run; the engines alternate, so both see the same load. Rounds go on while one fits in what
    is left of ``budget_s`` (at most ``MEASURE_CALLS``); when not even one fits (a huge model), the first calls
    are the measurement.

    Args:
        fp32_session, int8_session: onnxruntime sessions (``get_inputs``, ``run``).
        array: the input, float32 NCHW.
        budget_s: no round starts that would end past this many seconds from the start.
        turn: a lock (context manager) held during the first calls and during each round, so that the calls a
            running model answers meanwhile take turns with the timed ones rather than overlap them.

    Returns:
        fp32's and int8's median milliseconds per timed call, and the timed calls each made (at least 1).
    """
    turn = contextlib.nullcontext() if turn is None else turn
    start = time.perf_counter()
    sessions = (fp32_session, int8_session)
    with turn:
        first = [_timed(session, array) for session in sessions]
    times: list[list[float]] = [[], []]
    rounds, round_s = 0, 2 * sum(first)  # a round's cost: first guessed from the first calls, then measured
    while rounds < MEASURE_CALLS and time.perf_counter() - start + round_s <= budget_s:
        with turn:
            round_start = time.perf_counter()
            for index, session in enumerate(sessions):
                _timed(session, array)
                times[index].append(_timed(session, array))
            rounds, round_s = rounds + 1, time.perf_counter() - round_start
    if rounds == 0:
        times = [[first[0]], [first[1]]]
    fp32_s, int8_s = (statistics.median(values) for values in times)
    return 1000 * fp32_s, 1000 * int8_s, max(rounds, 1)


def _timed(session: Any, array: np.ndarray) -> float:
    inputs = session.get_inputs()
    feeds = {inputs[0].name: array}
    if len(inputs) > 1:  # a style-code input (a SPADE generator with a style encoder): the zero code
        feeds[inputs[1].name] = np.zeros((len(array), inputs[1].shape[1]), np.float32)
    start = time.perf_counter()
    session.run(None, feeds)
    return time.perf_counter() - start


# ----- remembered per machine --------------------------------------------------------------------------------
def choice_key(fingerprint: str, report: dict[str, Any] | None, shape: tuple[int, ...], threads: int) -> str:
    """A hash of what a measurement depends on: this CPU's model name, the onnxruntime version, the weights'
    fingerprint, the int8 graph's report (another calibration is another graph), the input shape, the threads."""
    import onnxruntime

    parts = [cpu_name(), onnxruntime.__version__, fingerprint, report, list(shape), threads]
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:32]


def choices_path() -> Path:
    """Where measurements are kept: ``CHOICES_NAME`` in the ONNX cache folder."""
    return default_cache_dir() / CHOICES_NAME


def _read_choices(path: Path) -> dict[str, Any]:
    try:
        choices = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # none yet, or unreadable: measure again
        return {}
    return choices if isinstance(choices, dict) else {}


def recall(key: str) -> SpeedMeasurement | None:
    """The measurement stored under ``key`` on this machine, or None (none, or an entry that does not parse)."""
    entry = _read_choices(choices_path()).get(key)
    if not isinstance(entry, dict):
        return None
    try:
        fields = {name: entry[name] for name in ("fp32_ms", "int8_ms", "calls", "cpu", "onnxruntime")}
        measurement = SpeedMeasurement(**fields, shape=tuple(entry["shape"]), cached=True)
        valid = measurement.fp32_ms > 0 and measurement.int8_ms > 0
    except (KeyError, TypeError):
        return None
    return measurement if valid else None


def remember(key: str, measurement: SpeedMeasurement) -> None:
    """Store ``measurement`` under ``key`` (atomically; the newest ``CHOICES_KEEP`` kept). A cache that cannot be
    written only means measuring again next time."""
    path = choices_path()
    choices = _read_choices(path)
    entry = {**asdict(measurement), "shape": list(measurement.shape), "measured_at": time.time()}
    entry.pop("cached")
    choices[key] = entry
    newest = sorted(choices.items(), key=lambda item: _measured_at(item[1]), reverse=True)[:CHOICES_KEEP]
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json(path, dict(newest))


def _measured_at(entry: Any) -> float:
    value = entry.get("measured_at") if isinstance(entry, dict) else None
    return float(value) if isinstance(value, (int, float)) else 0.0
