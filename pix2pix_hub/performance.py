"""Process-wide CPU speed settings that leave the maths unchanged (figures in docs/performance.md).

Library code never applies them: a setting that changes the whole process belongs to the program, so the entry
points call ``tune_allocator`` (``pix2pix_hub.training.cli.main`` for training, the Space's ``spaces_app/app.py``).
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
from pathlib import Path

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
