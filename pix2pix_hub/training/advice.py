"""What a run says before its first step: advice on the CPU's precision, warnings about settings that run but are
probably not what was meant, and a summary of the pix2pixHD options in use. Each is one printable line (or a list
of them), phrased in the flags that would change it; nothing here changes the run.

The CPU facts themselves (``has_native_bf16``) are process-wide and live in ``pix2pix_hub.performance``.
"""

from __future__ import annotations

from typing import Any

from ..performance import has_native_bf16
from .config import TrainingConfig, default_gan_mode


def cpu_precision_note(precision: str, capabilities: dict[str, Any] | None = None) -> str:
    """One start-up line about precision on a CPU: whether it has native bf16, and what that means for ``precision``.

    Args:
        precision: Accelerate's ``mixed_precision``: ``no``, ``fp16`` or ``bf16``.
        capabilities: ``performance.cpu_capabilities()``'s answer (read when None).

    Returns:
        The line; it starts with ``Warning:`` when ``precision`` is likely slower here than fp32.
    """
    native = has_native_bf16(capabilities)
    has = "has native bf16 (AVX-512 BF16 / AMX)" if native else "has no native bf16 (no AVX-512 BF16 or AMX)"
    if precision == "no":
        advice = "; --mixed_precision bf16 would likely train faster." if native else "; fp32 is the fast choice."
        return f"This CPU {has}{advice}"
    if precision == "bf16" and native:
        return f"This CPU {has}: training in bf16 autocast (weights, validation and the saved model stay fp32)."
    return f"Warning: this CPU {has}: {precision} is usually far slower here than fp32 (--mixed_precision no)."


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
        found.append(f"{config.label_nc}-class label maps{' with instance maps' if config.instance else ''}")
    if config.gradient_checkpointing:
        found.append("gradient checkpointing")
    return "pix2pixHD: " + "; ".join(found) + "." if found else None
