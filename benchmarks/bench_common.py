"""What the benchmarks share: a time bound on every loop that can run long, which variants run on this machine
(and why the others do not), the machine's description, and the JSON report.

Every benchmark script imports this module from its own folder (``python benchmarks/bench_x.py`` puts
``benchmarks/`` on ``sys.path``).

Emulated variants: bf16 autocast on a CPU without AVX-512 BF16 or AMX (``pix2pix_hub.performance.has_native_bf16``)
or on a GPU older than Ampere runs in software, tens of times slower than fp32 (one such variant of bench_train ran
for more than 10 minutes on an AVX2-only CPU). Such variants are skipped unless ``--include_emulated`` asks for
them, and the report names each skipped variant with its reason.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import torch

if importlib.util.find_spec("pix2pix_hub") is None:  # a checkout where the package is not installed (a GPU box)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pix2pix_hub.fileio import write_json  # noqa: E402
from pix2pix_hub.performance import cpu_capabilities, cpu_name, has_native_bf16  # noqa: E402

INCLUDE_EMULATED_HELP = "also run variants this machine only emulates (bf16 without native support): slow"
MAX_SECONDS_HELP = "time bound of {what}: loops stop early once it has passed (at least one timed call each)"


class TimeBound:
    """A deadline for a benchmark's loops: ``None`` seconds means none. ``stopped_early`` records whether a loop
    cut its count short, so the report can say its figure rests on fewer calls than asked."""

    def __init__(self, seconds: float | None) -> None:
        self.seconds = seconds
        self.start = time.monotonic()
        self.stopped_early = False

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def left(self) -> float:
        return math.inf if self.seconds is None else self.seconds - self.elapsed()

    def expired(self) -> bool:
        return self.left() <= 0

    def loop(self, count: int, minimum: int = 1) -> Iterator[int]:
        """``range(count)``, ending early once the bound has passed, after at least ``minimum`` turns."""
        for index in range(count):
            if index >= minimum and self.expired():
                self.stopped_early = True
                return
            yield index

    def report(self) -> dict[str, Any]:
        return {"max_seconds": self.seconds, "stopped_early": self.stopped_early, "elapsed_s": round(self.elapsed(), 1)}


def timed_calls(function: Callable[[], object], count: int, bound: TimeBound | None = None, minimum: int = 1) -> list:
    """Seconds of each of up to ``count`` calls of ``function`` (fewer once ``bound`` has passed, never under
    ``minimum``)."""
    bound = bound or TimeBound(None)
    times = []
    for _ in bound.loop(count, minimum):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return times


def add_bound_arguments(parser: argparse.ArgumentParser, what: str, default: float | None) -> None:
    """``--max_seconds`` (the time bound of ``what``) and ``--include_emulated``."""
    parser.add_argument("--max_seconds", type=float, default=default, help=MAX_SECONDS_HELP.format(what=what))
    parser.add_argument("--include_emulated", action="store_true", help=INCLUDE_EMULATED_HELP)


# ----- which variants run ---------------------------------------------------------------------------------------
def cpu_bf16_emulated(capabilities: Mapping[str, Any] | None = None) -> str | None:
    """Why bf16 autocast is emulated on this CPU, or None where the CPU computes in bf16 natively."""
    capabilities = cpu_capabilities() if capabilities is None else capabilities
    if has_native_bf16(dict(capabilities)):
        return None
    return "bf16 is emulated on this CPU (no AVX-512 BF16 or AMX in cpu_capabilities): tens of times slower than fp32"


def cuda_bf16_emulated(capability: tuple[int, int] | None = None) -> str | None:
    """Why bf16 is emulated on this GPU (compute capability under 8.0, before Ampere), or None where it is native.
    ``capability``: ``torch.cuda.get_device_capability()``'s answer (read when None)."""
    capability = torch.cuda.get_device_capability() if capability is None else capability
    if tuple(capability) >= (8, 0):
        return None
    return f"bf16 is emulated on this GPU (compute capability {capability[0]}.{capability[1]}, native from 8.0)"


def select_variants(
    emulated: Mapping[str, str | None], include_emulated: bool
) -> tuple[list[str], dict[str, str], dict[str, str]]:
    """Which variants to run, in order.

    Args:
        emulated: every variant's name -> why this machine only emulates it (None: it runs natively).
        include_emulated: run emulated variants too.

    Returns:
        ``(to_run, skipped, notes)``: the names to run; ``{name: why not}`` for the others; ``{name: warning}`` for
        emulated variants run anyway.
    """
    to_run, skipped, notes = [], {}, {}
    for name, reason in emulated.items():
        if reason is None:
            to_run.append(name)
        elif include_emulated:
            to_run.append(name)
            notes[name] = f"{reason}; run because --include_emulated was given"
        else:
            skipped[name] = f"{reason}; skipped (--include_emulated runs it)"
    return to_run, skipped, notes


# ----- the machine and the report -----------------------------------------------------------------------------
def machine() -> dict[str, Any]:
    """The machine a report was measured on: CPU model and capabilities, threads, GPU (if any), versions."""
    description = {
        "cpu_model": cpu_name(),
        "cpu_count": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "capabilities": cpu_capabilities(),
        "native_bf16": cpu_bf16_emulated() is None,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "load_average_1m": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
    }
    if torch.cuda.is_available():
        description["gpu"] = torch.cuda.get_device_name()
        description["gpu_count"] = torch.cuda.device_count()
        description["gpu_capability"] = ".".join(map(str, torch.cuda.get_device_capability()))
        description["cuda"] = torch.version.cuda
    return description


def run_worker(script: str, worker: str, argv: list[str], timeout: float | None) -> dict | None:
    """``script --worker worker`` in a fresh Python process (a case's memory and threads start clean there): the
    JSON object on its last stdout line; None when it ran past ``timeout`` seconds (it is stopped)."""
    command = [sys.executable, script, *argv, "--worker", worker]
    try:
        completed = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None
    return json.loads(completed.stdout.strip().splitlines()[-1])


def write_report(report: dict[str, Any], path: str | os.PathLike | None) -> None:
    """The report as one JSON line on stdout (the last line), and into ``path`` when given (``fileio.write_json``:
    written whole, so a stopped run never leaves half a file)."""
    if path:
        write_json(path, report)
    print(json.dumps(report), flush=True)
