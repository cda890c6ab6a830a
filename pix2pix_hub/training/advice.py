"""What a run says before its first step: advice on the CPU's precision, warnings about settings that run but are
probably not what was meant, and a summary of the pix2pixHD options in use. Each is one printable line (or a list
of them), phrased in the flags that would change it; nothing here changes the run.

The CPU facts themselves (``has_native_bf16``, ``time_bf16_autocast``) are process-wide and live in
``pix2pix_hub.performance``; the bf16 advice follows a timing made on this CPU (``measured_bf16_speedup``, cached
per CPU model), the flags only where none could be made.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from .. import fileio
from ..inference.onnx_engine import default_cache_dir
from ..performance import cpu_capabilities, cpu_name, has_native_bf16, time_bf16_autocast
from .config import TrainingConfig, default_gan_mode

BF16_TIMINGS_NAME = "bf16-timings.json"  # in the package's cache folder, next to the ONNX graphs
BF16_FASTER = 1.1  # a measured ratio above this counts as faster (below it, timing noise)


def cpu_precision_note(precision: str, capabilities: dict[str, Any] | None = None, speedup: float | None = None) -> str:
    """One start-up line about precision on a CPU: whether it has native bf16, and what that means for ``precision``.

    Args:
        precision: Accelerate's ``mixed_precision``: ``no``, ``fp16`` or ``bf16``.
        capabilities: ``performance.cpu_capabilities()``'s answer (read when None).
        speedup: fp32's time over bf16 autocast's as measured here (``measured_bf16_speedup``); None: the advice
            is a guess from the CPU's flags, and says so.

    Returns:
        The line; it starts with ``Warning:`` when ``precision`` is likely slower here than fp32.
    """
    native = has_native_bf16(capabilities)
    has = "has native bf16 (AVX-512 BF16 / AMX)" if native else "has no native bf16 (no AVX-512 BF16 or AMX)"
    if speedup is None:
        faster, basis = native, " (a guess from the CPU flags; `make bench` measures)"
    else:
        faster = speedup > BF16_FASTER
        basis = f" (measured here: a conv step in bf16 autocast {speedup:.2f}x the speed of fp32)"
    if precision == "no":
        advice = "--mixed_precision bf16 would likely train faster" if faster else "fp32 is the fast choice"
        return f"This CPU {has}; {advice}{basis}."
    if precision == "bf16" and faster:
        return f"This CPU {has}: training in bf16 autocast (weights, validation and the saved model stay fp32){basis}."
    return f"Warning: this CPU {has}: {precision} is usually far slower here than fp32 (--mixed_precision no){basis}."


def measured_bf16_speedup(
    cache_file: Path | None = None, measure: Callable[[], dict[str, float]] = time_bf16_autocast
) -> float | None:
    """fp32's time over bf16 autocast's for a small conv step on this CPU (``performance.time_bf16_autocast``, under
    a second), measured once per CPU model (its name and instruction-set flags) and torch version and kept in
    ``cache_file``.

    Args:
        cache_file: the JSON file of measurements (default ``BF16_TIMINGS_NAME`` in the package's cache folder).
        measure: the timing (tests pass a fake).

    Returns:
        The ratio (above 1: bf16 faster); None when it cannot be measured. A cache that cannot be read or written
        is measured around, never an error.
    """
    path = cache_file or default_cache_dir() / BF16_TIMINGS_NAME
    flags = sorted(name for name, value in cpu_capabilities().items() if value is True)  # "AMD EPYC" names many CPUs
    key = f"{cpu_name()} | {' '.join(flags)} | torch {torch.__version__}"
    try:
        known = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        known = {}
    if not isinstance(known, dict):
        known = {}
    if isinstance(known.get(key), dict) and "speedup" in known[key]:
        return float(known[key]["speedup"])
    try:
        timing = measure()
    except RuntimeError:  # no bf16 kernels in this torch build
        return None
    with contextlib.suppress(OSError):
        fileio.write_json(path, {**known, key: timing})
    return float(timing["speedup"])


def config_warnings(config: TrainingConfig) -> list[str]:
    """Settings that run but are probably not what was meant, one sentence each (printed before training)."""
    found = []
    if config.gan_mode == "wgangp" and config.norm == "batch":
        found.append(
            "--gan_mode wgangp with --norm batch: the gradient penalty is defined per sample, and batch norm in the "
            "discriminator mixes the samples of a batch (Gulrajani et al. 2017, section 4). Use --norm instance "
            "or --norm none."
        )
    if config.niter_fix_global and not config.init_from:
        found.append(
            f"--niter_fix_global {config.niter_fix_global} without --init_from holds a global generator that was never "
            "trained fixed. pix2pixHD's recipe trains --netG global first, then starts --netG local from it with "
            "--init_from GLOBAL_MODEL."
        )
    return found


def high_resolution_summary(config: TrainingConfig) -> str | None:
    """One start-up line on the pix2pixHD options in use (None when there are none): the multi-scale
    discriminator and its GAN loss (saying when LSGAN is the preset's choice), feature matching, the VGG loss,
    the global generator's fixed epochs, label maps, gradient checkpointing."""
    found = []
    if config.multiscale:
        preset = config.gan_mode == default_gan_mode(config.netD)
        why = " (pix2pixHD's, the default with --netD multiscale; --gan_mode sets another)" if preset else ""
        found.append(f"{config.num_D}-scale discriminator, GAN loss {config.gan_mode}{why}")
        found.append(f"feature matching x{config.lambda_feat:g}" if config.lambda_feat else "no feature matching")
    if config.lambda_vgg:
        found.append(f"VGG loss x{config.lambda_vgg:g}")
    if config.niter_fix_global:
        found.append(f"the global generator fixed for the first {config.niter_fix_global} epoch(s)")
    if config.label_nc:
        dontcare = " and a don't-care class" if config.contain_dontcare_label else ""
        found.append(f"{config.label_nc}-class label maps{' with instance maps' if config.instance else ''}{dontcare}")
    if config.use_vae:
        found.append(f"style encoder (z_dim {config.z_dim}, KL x{config.lambda_kl:g})")
    if config.gradient_checkpointing:
        found.append("gradient checkpointing")
    # SPADE trains with pix2pixHD's discriminator and losses: the same line, named for the generator in use
    name = "SPADE" if config.netG == "spade" else "pix2pixHD"
    return f"{name}: " + "; ".join(found) + "." if found else None
