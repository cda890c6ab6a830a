"""Process-wide CPU speed settings that leave the maths unchanged (figures in README "Performance").

Kept out of import side effects: ``train()`` and the command-line tools call ``tune_allocator`` explicitly, and
each has a switch to leave the process as it was.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import platform
import resource
from pathlib import Path

# glibc's mallopt parameters (malloc.h).
M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4


def tune_allocator() -> bool:
    """Make glibc keep freed memory for reuse instead of handing it back to the kernel.

    A pix2pix step allocates and frees the same few hundred MB of tensors every time. By default glibc serves
    blocks above ~32 MB (and, adaptively, smaller ones) with fresh ``mmap`` calls and trims the heap on free, so
    every step page-faults its buffers in again: measured here, ~10% of a training step and ~25% of an eager
    inference. With mmap off and trimming off, the heap grows to the run's peak once and stays there (peak RSS
    is unchanged; it stops growing after the first steps, see ``benchmarks/bench_train.py``).

    Returns True when the allocator was tuned (Linux with glibc), False where it does not apply.
    """
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    # mallopt returns 1 on success; calling it again is harmless. Trim threshold: the int parameter's maximum.
    return bool(libc.mallopt(M_MMAP_MAX, 0)) and bool(libc.mallopt(M_TRIM_THRESHOLD, 2**31 - 1))


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
