"""Image quality metrics shared by training validation and ``pix2pix-hub evaluate``: L1, PSNR, SSIM.

All take float tensors ``(N, C, H, W)`` in [-1, 1] (the models' range) and return one value per image, computed
on the [0, 1] scale. PSNR of identical images is capped at ``PSNR_CAP_DB`` so means stay finite.
SSIM is torchmetrics' (Gaussian window 11, sigma 1.5), imported lazily: it is in the ``train``/``eval`` extras.
"""

from __future__ import annotations

import torch

PSNR_CAP_DB = 100.0
SSIM_MIN_SIDE = 11  # the Gaussian window


def _unit(x: torch.Tensor) -> torch.Tensor:
    return (x.detach().float() + 1) / 2


def l1_per_image(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean absolute error on the [0, 1] scale, per image: ``(N,)``."""
    return (_unit(output) - _unit(target)).abs().flatten(1).mean(1)


def psnr_per_image(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB (data range 1), per image, capped at ``PSNR_CAP_DB``: ``(N,)``."""
    mse = (_unit(output) - _unit(target)).pow(2).flatten(1).mean(1)
    psnr = 10 * torch.log10(1.0 / mse.clamp_min(1e-20))
    return psnr.clamp(max=PSNR_CAP_DB)


def ssim_per_image(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Structural similarity (torchmetrics), per image: ``(N,)``; 1 for identical images."""
    from torchmetrics.functional.image import structural_similarity_index_measure

    if min(output.shape[-2:]) < SSIM_MIN_SIDE:
        raise ValueError(
            f"SSIM needs images of at least {SSIM_MIN_SIDE}x{SSIM_MIN_SIDE}; got {tuple(output.shape[-2:])}."
        )
    return structural_similarity_index_measure(
        _unit(output).clamp(0, 1), _unit(target).clamp(0, 1), data_range=1.0, reduction="none"
    ).reshape(-1)


def image_metrics(output: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
    """``{"l1": (N,), "psnr": (N,), "ssim": (N,)}`` for a batch of outputs and targets of the same shape."""
    if output.shape != target.shape:
        raise ValueError(f"output {tuple(output.shape)} and target {tuple(target.shape)} must have the same shape.")
    return {
        "l1": l1_per_image(output, target),
        "psnr": psnr_per_image(output, target),
        "ssim": ssim_per_image(output, target),
    }
