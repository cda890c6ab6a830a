"""GAN objectives on the discriminator's raw logits, the pix2pix L1 term, and the WGAN-GP gradient penalty.

All losses take logits of any shape ``(N, 1, H', W')`` (one per patch) and return a scalar mean over patches.
The discriminator loss is halved, as in the paper ("we divide the objective by 2 while optimizing D"). A
multi-scale discriminator gives a list of logit maps, one per scale: the GAN losses are summed over it, as
pix2pixHD's ``GANLoss`` does (its ``lambda_feat`` = 10 is balanced against that sum).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..constants import GAN_MODES, check_choice
from ..models.winograd import WinogradConv2d

Logits = torch.Tensor | Sequence[torch.Tensor]  # one logit map, or one per scale (multi-scale discriminator)


def over_scales(loss: Callable[[torch.Tensor], torch.Tensor], logits: Logits) -> torch.Tensor:
    """``loss`` of one logit map, or summed over the scales' maps (pix2pixHD's ``GANLoss`` loop)."""
    if isinstance(logits, torch.Tensor):
        return loss(logits)
    total = loss(logits[0])
    for scale in logits[1:]:
        total = total + loss(scale)
    return total


class GANLoss:
    """``vanilla`` (sigmoid cross-entropy on logits, the paper), ``lsgan`` (least squares to 1/0), ``wgangp``
    (Wasserstein critic; add ``gradient_penalty``) or ``hinge``."""

    def __init__(self, mode: str = "vanilla") -> None:
        check_choice("gan_mode", mode, GAN_MODES)
        self.mode = mode

    def _towards(self, logits: torch.Tensor, real: bool) -> torch.Tensor:
        """How far ``logits`` are from the label ``real`` (vanilla/lsgan) or their signed mean (wgangp)."""
        if self.mode == "vanilla":
            target = torch.ones_like(logits) if real else torch.zeros_like(logits)
            return F.binary_cross_entropy_with_logits(logits, target)
        if self.mode == "lsgan":
            target = torch.ones_like(logits) if real else torch.zeros_like(logits)
            return F.mse_loss(logits, target)
        return -logits.mean() if real else logits.mean()

    def _real_term(self, logits: torch.Tensor) -> torch.Tensor:
        return F.relu(1 - logits).mean() if self.mode == "hinge" else self._towards(logits, real=True)

    def _fake_term(self, logits: torch.Tensor) -> torch.Tensor:
        return F.relu(1 + logits).mean() if self.mode == "hinge" else self._towards(logits, real=False)

    def _generator_term(self, logits: torch.Tensor) -> torch.Tensor:
        return -logits.mean() if self.mode == "hinge" else self._towards(logits, real=True)

    def generator_loss(self, fake_logits: Logits) -> torch.Tensor:
        """G wants D to call its outputs real: ``D(x, G(x))`` logits (or one map per scale, summed) -> scalar."""
        return over_scales(self._generator_term, fake_logits)

    def discriminator_terms(self, real_logits: Logits, fake_logits: Logits) -> tuple[torch.Tensor, torch.Tensor]:
        """D's loss on real pairs ``D(x, y)`` and on fake pairs ``D(x, G(x))``: two scalars, not yet halved (each
        summed over the scales of a multi-scale discriminator)."""
        return over_scales(self._real_term, real_logits), over_scales(self._fake_term, fake_logits)

    def discriminator_loss(self, real_logits: Logits, fake_logits: Logits) -> torch.Tensor:
        """``(loss on real + loss on fake) / 2`` -> scalar."""
        real, fake = self.discriminator_terms(real_logits, fake_logits)
        return 0.5 * (real + fake)


def l1_loss(fake: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean absolute error between ``(N, C, H, W)`` images in [-1, 1] (the paper's L1 term, before ``lambda_l1``)."""
    return F.l1_loss(fake, target)


@contextlib.contextmanager
def direct_convolutions(model: nn.Module) -> Iterator[nn.Module]:
    """Every ``WinogradConv2d`` of ``model`` runs as a plain ``nn.Conv2d`` inside, as it did before on exit, and
    without gradient checkpointing.

    The Winograd Function's backward is not itself differentiable, so a graph of a gradient (the penalty's
    ``create_graph=True``) must be built through the direct convolution; the graph keeps those ops afterwards. A
    checkpointed segment would instead be replayed in the backward pass, after this block, with Winograd on.
    """
    layers = [layer for layer in model.modules() if isinstance(layer, WinogradConv2d)]
    before = [layer.winograd for layer in layers]
    checkpointed = [module for module in model.modules() if getattr(module, "gradient_checkpointing", False)]
    try:
        for layer in layers:
            layer.winograd = False
        for module in checkpointed:
            module.gradient_checkpointing = False
        yield model
    finally:
        for layer, value in zip(layers, before):
            layer.winograd = value
        for module in checkpointed:
            module.gradient_checkpointing = True


def gradient_penalty(
    discriminator: nn.Module,
    real_pairs: torch.Tensor,
    fake_pairs: torch.Tensor,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """WGAN-GP (Gulrajani et al. 2017): ``mean((||grad D(mix)|| - 1) ** 2)`` on random mixes of real and fake pairs.

    ``real_pairs``/``fake_pairs``: ``(N, input_nc + output_nc, H, W)``; the fake ones should be detached. D runs
    with direct convolutions here, so the penalty's own gradient (a double backward) is exact.
    """
    alpha = torch.rand(real_pairs.shape[0], 1, 1, 1, device=real_pairs.device, generator=generator)
    mixed = (alpha * real_pairs + (1 - alpha) * fake_pairs).requires_grad_(True)
    with direct_convolutions(discriminator):
        critic = over_scales(torch.sum, discriminator(mixed))  # a multi-scale critic: the sum of its scales
        (grads,) = torch.autograd.grad(critic, mixed, create_graph=True)
    return ((grads.flatten(1).norm(2, dim=1) - 1) ** 2).mean()
