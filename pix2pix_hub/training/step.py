"""One pix2pix optimisation step, as a pure function of the batch, the modules and the accelerator.

It is the authors' ``optimize_parameters`` without state kept on an object, so it can be timed, optimised and
tested on its own (``tests/test_train_speed.py`` checks it against the textbook eager loop).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from accelerate import Accelerator
from torch import nn

from .losses import GANLoss, gradient_penalty, l1_loss


@dataclass
class StepParts:
    """Everything ``train_step`` touches. ``generator``/``discriminator`` are the prepared (maybe DDP) modules."""

    generator: nn.Module
    discriminator: nn.Module
    optimizer_g: torch.optim.Optimizer
    optimizer_d: torch.optim.Optimizer
    gan_loss: GANLoss
    lambda_l1: float
    lambda_gp: float


def train_step(batch: dict[str, torch.Tensor], parts: StepParts, accelerator: Accelerator) -> dict[str, torch.Tensor]:
    """One pix2pix update of D, then G, on ``batch`` (``input``/``target``: ``(N, C, H, W)`` in [-1, 1]).

    As the authors' ``optimize_parameters``: G(x) once; D learns on (x, y) real and (x, G(x)) detached fake,
    loss halved; then G learns to fool the frozen D plus ``lambda_l1`` * L1(G(x), y). Under gradient accumulation
    the optimizer steps only on sync micro-batches (Accelerate's wrapped optimizers skip the others).
    Returns detached scalar losses (no host sync here).
    """
    real_a, real_b = batch["input"], batch["target"]
    generator, discriminator = parts.generator, parts.discriminator
    # G's step calls D's inner (unwrapped) module with its weights frozen: they get no grads there, so DDP must
    # not expect them, and no time is spent computing them.
    inner_d = accelerator.unwrap_model(discriminator)
    losses: dict[str, torch.Tensor] = {}
    with accelerator.accumulate(generator, discriminator):
        with accelerator.autocast():
            fake_b = generator(real_a)

        inner_d.requires_grad_(True)
        with accelerator.autocast():
            fake_pairs = torch.cat([real_a, fake_b.detach()], dim=1)
            real_pairs = torch.cat([real_a, real_b], dim=1)
            d_real, d_fake = parts.gan_loss.discriminator_terms(discriminator(real_pairs), discriminator(fake_pairs))
            loss_d = 0.5 * (d_real + d_fake)
            if parts.gan_loss.mode == "wgangp":
                penalty = gradient_penalty(discriminator, real_pairs, fake_pairs)
                loss_d = loss_d + parts.lambda_gp * penalty
                losses["loss_D_gp"] = penalty.detach()
        accelerator.backward(loss_d)
        parts.optimizer_d.step()
        parts.optimizer_d.zero_grad(set_to_none=True)

        inner_d.requires_grad_(False)
        with accelerator.autocast():
            g_gan = parts.gan_loss.generator_loss(inner_d(torch.cat([real_a, fake_b], dim=1)))
            g_l1 = l1_loss(fake_b, real_b)
            loss_g = g_gan + parts.lambda_l1 * g_l1
        accelerator.backward(loss_g)
        parts.optimizer_g.step()
        parts.optimizer_g.zero_grad(set_to_none=True)
        inner_d.requires_grad_(True)

    losses.update(loss_G_GAN=g_gan.detach(), loss_G_L1=g_l1.detach(), loss_D_real=d_real.detach())
    losses["loss_D_fake"] = d_fake.detach()
    return losses
