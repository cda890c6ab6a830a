"""Process-wide performance facts: CPU speed settings that leave the maths unchanged (figures in
docs/performance.md), and what the CPU accelerates (``cpu_capabilities``, ``cpu_name``).

Library code never applies them: a setting that changes the whole process belongs to the program, so the entry
points call ``tune_allocator`` (``pix2pix_hub.commands.train.main`` for training, the Space's ``spaces_app/app.py``).
Each entry point has a switch to leave the process as it was; the environment variable
``PIX2PIX_NO_ALLOCATOR_TUNING=1`` is the Space's (``tune_allocator_unless_disabled``), and any entry point may
honour it too.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform
import resource
import time
from pathlib import Path
from typing import Any

import torch

NO_ALLOCATOR_TUNING = "PIX2PIX_NO_ALLOCATOR_TUNING"  # set to 1: entry points leave glibc's allocator alone

# glibc's mallopt parameters (malloc.h).
M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4


def tune_allocator() -> bool:
    """Make glibc keep freed memory for reuse instead of handing it back to the kernel.

    A pix2pix step allocates and frees the same few hundred MB of tensors every time. By default glibc serves
    blocks above ~32 MB (and, adaptively, smaller ones) with fresh ``mmap`` calls and trims the heap on free, so
    every step page-faults its buffers in again, a noticeable share of a training step and of an eager inference
    (docs/performance.md). With mmap off and trimming off, the heap grows to the run's peak once and stays there
    (peak RSS is unchanged; it stops growing after the first steps, see ``benchmarks/bench_train.py``).

    Returns True when the allocator was tuned (Linux with glibc), False where it does not apply.
    """
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    # mallopt returns 1 on success; calling it again is harmless. Trim threshold: the int parameter's maximum.
    return bool(libc.mallopt(M_MMAP_MAX, 0)) and bool(libc.mallopt(M_TRIM_THRESHOLD, 2**31 - 1))


def tune_allocator_unless_disabled() -> bool:
    """``tune_allocator()`` unless the environment says ``PIX2PIX_NO_ALLOCATOR_TUNING=1``; True when tuned."""
    if os.environ.get(NO_ALLOCATOR_TUNING) == "1":
        return False
    return tune_allocator()


def rss_mb() -> float | None:
    """Resident memory of this process now, in MB (Linux; None elsewhere)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return None
    return pages * resource.getpagesize() / 2**20


def peak_rss_mb() -> float:
    """The most resident memory this process has had, in MB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if platform.system() == "Darwin" else peak / 1024  # bytes on macOS, KB on Linux


# --- what the CPU accelerates ---------------------------------------------------------------------------------

CPUINFO_PATH = Path("/proc/cpuinfo")
# /proc/cpuinfo flags reported by cpu_capabilities (avx_vnni: the AVX2-width VNNI of recent client CPUs).
CPU_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_int8", "amx_bf16")


def cpu_capabilities(cpuinfo: str | os.PathLike = CPUINFO_PATH) -> dict[str, Any]:
    """Which low-precision instructions the CPU has: ``{"avx2", "avx512f", "avx512_vnni", "avx_vnni",
    "avx512_bf16", "amx_int8", "amx_bf16": bool, "source": str}``.

    Read from the ``flags`` line of ``/proc/cpuinfo`` (Linux on x86; on other CPUs every flag is False). Where that
    file does not exist (macOS, Windows), torch's cpuinfo-based checks answer instead; they have no ``avx_vnni``,
    and report AMX as one feature for both ``amx_`` entries.
    """
    path = Path(cpuinfo)
    if path.is_file():
        flags = _cpuinfo_flags(path)
        return {flag: flag in flags for flag in CPU_FLAGS} | {"source": str(path)}
    return _torch_capabilities()


def _cpuinfo_flags(path: Path) -> set[str]:
    """The first processor's ``flags`` (all cores report the same); an empty set if there is no such line."""
    return set(_cpuinfo_field(path, "flags").split())


def _cpuinfo_field(path: Path, name: str) -> str:
    """The first processor's ``name`` field of ``/proc/cpuinfo``; "" if there is no such line."""
    with path.open(encoding="utf-8", errors="replace") as file:
        for line in file:
            key, _, value = line.partition(":")
            if key.strip() == name:
                return value.strip()
    return ""


def cpu_name(cpuinfo: str | os.PathLike = CPUINFO_PATH) -> str:
    """The CPU's model name, for benchmark reports (``/proc/cpuinfo``; elsewhere ``platform``'s answer)."""
    path = Path(cpuinfo)
    name = _cpuinfo_field(path, "model name") if path.is_file() else ""
    return name or platform.processor() or platform.machine()


def _torch_capabilities() -> dict[str, Any]:
    def check(name: str) -> bool:
        probe = getattr(torch.cpu, name, None)  # private helpers: absent in some torch versions
        return bool(probe()) if probe is not None else False

    amx = check("_is_amx_tile_supported")
    return {
        "avx2": check("_is_avx2_supported"),
        "avx512f": check("_is_avx512_supported"),
        "avx512_vnni": check("_is_vnni_supported"),
        "avx_vnni": False,
        "avx512_bf16": check("_is_avx512_bf16_supported"),
        "amx_int8": amx,
        "amx_bf16": amx,
        "source": "torch",
    }


def has_native_bf16(capabilities: dict[str, Any] | None = None) -> bool:
    """Whether this CPU computes in bf16 natively (AVX-512 BF16 or AMX): where bf16 autocast is faster than fp32.
    Elsewhere bf16 is emulated and slower. ``capabilities``: ``cpu_capabilities()``'s answer (read when None)."""
    capabilities = cpu_capabilities() if capabilities is None else capabilities
    return bool(capabilities.get("avx512_bf16") or capabilities.get("amx_bf16"))


def time_bf16_autocast(budget_s: float = 1.0, repeats: int = 5) -> dict[str, float]:
    """How long a small convolution's forward and backward take here in fp32 and under CPU bf16 autocast.

    A 3x3 conv, 32 channels, batch 4 at 32x32 (the shape of a pix2pix layer, small enough to time in well under a
    second even where bf16 is emulated), alternated, the fastest of up to ``repeats`` each within ``budget_s`` (the
    least disturbed by other processes). The global RNG is left as it was.

    Args:
        budget_s: the time allowed after one warm-up call of each.
        repeats: timed calls of each at most.

    Returns:
        ``{"fp32_ms", "bf16_ms", "speedup"}``: ``speedup`` is fp32's time over bf16's (above 1: bf16 faster).
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        conv = torch.nn.Conv2d(32, 32, 3, padding=1)
        inputs = torch.randn(4, 32, 32, 32)

    def once(bf16: bool) -> float:
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            conv(inputs).float().square().mean().backward()
        return time.perf_counter() - start

    once(False), once(True)  # first calls choose kernels and allocate
    times: dict[bool, list[float]] = {False: [], True: []}
    deadline = time.perf_counter() + budget_s
    while min(len(v) for v in times.values()) < repeats and time.perf_counter() < deadline:
        for bf16 in (False, True):
            times[bf16].append(once(bf16))
    fp32, bf16 = (min(times[key], default=float("inf")) for key in (False, True))
    return {"fp32_ms": fp32 * 1e3, "bf16_ms": bf16 * 1e3, "speedup": fp32 / bf16}
