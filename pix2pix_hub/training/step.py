"""One pix2pix optimisation step, as a pure function of the batch, the modules and the accelerator.

It is the authors' ``optimize_parameters`` without state kept on an object, so it can be timed, optimised and
tested on its own (``tests/test_train_speed.py`` checks it against the textbook eager loop). pix2pixHD's terms
(Wang et al. 2018) join the generator's loss when their weights are set: feature matching on a multi-scale
discriminator's activations, the VGG perceptual loss. SPADE's style encoder (Park et al. 2019, ``--use_vae``)
encodes the target into a code's mean and log-variance, G draws on a reparameterised sample of it, and the KL
term joins G's loss. With none of these, the step is the pix2pix one, operation for operation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from accelerate import Accelerator
from torch import nn

from .losses import GANLoss, feature_matching_loss, gradient_penalty, kl_divergence, l1_loss, reparameterize

Losses = dict[str, torch.Tensor]


@dataclass
class StepParts:
    """Everything ``train_step`` touches. ``generator``/``discriminator`` are the prepared (maybe DDP) modules.

    pix2pixHD's parts: ``lambda_feat`` > 0 adds feature matching (the discriminator must be multi-scale: it
    returns its features); ``vgg_loss`` (a ``VGGLoss``) with ``lambda_vgg``; ``fixed_parameters`` are generator
    parameters held fixed this step (the global generator for ``--niter_fix_global`` epochs).
    SPADE's: ``lambda_kl`` (not None) means the generator has a style encoder (``encode``) and takes its code.
    """

    generator: nn.Module
    discriminator: nn.Module
    optimizer_g: torch.optim.Optimizer
    optimizer_d: torch.optim.Optimizer
    gan_loss: GANLoss
    lambda_l1: float
    lambda_gp: float
    lambda_feat: float = 0.0
    vgg_loss: nn.Module | None = None
    lambda_vgg: float = 0.0
    fixed_parameters: tuple[nn.Parameter, ...] = ()
    scaler_g: Any = None  # fp16: G's own GradScaler (``speed.give_generator_its_scaler``); None: Accelerate's
    lambda_kl: float | None = None


def train_step(batch: dict[str, torch.Tensor], parts: StepParts, accelerator: Accelerator) -> Losses:
    """One pix2pix update of D, then G, on ``batch``.

    As the authors' ``optimize_parameters``: G(x) once (with a style encoder G(x, z), z drawn from E(y)); D learns
    on (x, y) real and (x, G(x)) detached fake, loss halved; then G learns to fool the frozen D plus its other
    terms. Under gradient accumulation the
    optimizers step only on sync micro-batches (Accelerate's wrapped optimizers skip the others).

    Args:
        batch: ``input`` ``(N, C_in, H, W)`` and ``target`` ``(N, C_out, H, W)``, images in [-1, 1], label maps
            one-hot.
        parts: the prepared networks and optimizers, the GAN loss and the weights of every term.
        accelerator: the run's ``Accelerator`` (autocast, accumulation, backward).

    Returns:
        Detached scalar losses by name (no host sync here).
    """
    real_a, real_b = batch["input"], batch["target"]
    # G's step calls D's inner (unwrapped) module with its weights frozen: they get no grads there, so DDP must
    # not expect them, and no time is spent computing them.
    inner_d = accelerator.unwrap_model(parts.discriminator)
    with accelerator.accumulate(parts.generator, parts.discriminator):
        with accelerator.autocast():
            fake_b, kl = generate(parts, accelerator, real_a, real_b)

        inner_d.requires_grad_(True)
        losses = backward_d(parts, accelerator, real_a, real_b, fake_b)
        parts.optimizer_d.step()
        parts.optimizer_d.zero_grad(set_to_none=True)

        inner_d.requires_grad_(False)
        losses.update(backward_g(parts, accelerator, inner_d, real_a, real_b, fake_b, kl))
        # --niter_fix_global: the global generator's gradients were computed (as in pix2pixHD, and DDP reduces
        # every parameter's) but are dropped, so Adam skips those parameters and they stay as loaded.
        for parameter in parts.fixed_parameters:
            parameter.grad = None
        parts.optimizer_g.step()
        parts.optimizer_g.zero_grad(set_to_none=True)
        inner_d.requires_grad_(True)
    return losses


def generate(
    parts: StepParts, accelerator: Accelerator, real_a: torch.Tensor, real_b: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``(G(x), None)``; with SPADE's style encoder ``(G(x, z), KL)``: ``mu, logvar = E(y)``, ``z = mu + eps *
    exp(logvar / 2)`` (``reparameterize``), so the encoder learns through G's loss, and the KL term of ``mu``,
    ``logvar``. Images ``(N, C, H, W)``; KL a scalar."""
    if parts.lambda_kl is None:
        return parts.generator(real_a), None
    # E is part of G (its weights in G's file, G's optimizer), called on the unwrapped module: only G's forward
    # goes through a DDP wrapper.
    mu, logvar = accelerator.unwrap_model(parts.generator).encode(real_b)
    return parts.generator(real_a, reparameterize(mu, logvar)), kl_divergence(mu, logvar)


def backward_d(
    parts: StepParts, accelerator: Accelerator, real_a: torch.Tensor, real_b: torch.Tensor, fake_b: torch.Tensor
) -> Losses:
    """D's loss, ``(GAN(D(x, y), real) + GAN(D(x, G(x)), fake)) / 2`` (each summed over the scales of a
    multi-scale D) plus the WGAN-GP penalty, and its backward pass."""
    losses: Losses = {}
    with accelerator.autocast():
        fake_pairs = torch.cat([real_a, fake_b.detach()], dim=1)
        real_pairs = torch.cat([real_a, real_b], dim=1)
        discriminator = parts.discriminator
        d_real, d_fake = parts.gan_loss.discriminator_terms(discriminator(real_pairs), discriminator(fake_pairs))
        loss_d = 0.5 * (d_real + d_fake)
        if parts.gan_loss.mode == "wgangp":
            penalty = gradient_penalty(discriminator, real_pairs, fake_pairs, scaler=accelerator.scaler)
            loss_d = loss_d + parts.lambda_gp * penalty
            losses["loss_D_gp"] = penalty.detach()
    accelerator.backward(loss_d)
    losses.update(loss_D_real=d_real.detach(), loss_D_fake=d_fake.detach())
    return losses


def backward_g(
    parts: StepParts,
    accelerator: Accelerator,
    inner_d: nn.Module,
    real_a: torch.Tensor,
    real_b: torch.Tensor,
    fake_b: torch.Tensor,
    kl: torch.Tensor | None = None,
) -> Losses:
    """G's loss and its backward pass, through the frozen ``inner_d``: ``GAN(D(x, G(x)), real) + lambda_l1 *
    L1(G(x), y)``, plus pix2pixHD's ``lambda_feat * FM`` (the real pair's features under ``no_grad``: only G learns
    from them, as pix2pixHD detaches them) and ``lambda_vgg * VGG(G(x), y)``, and SPADE's ``lambda_kl * kl``."""
    losses: Losses = {}
    with accelerator.autocast():
        fake_pairs = torch.cat([real_a, fake_b], dim=1)
        if parts.lambda_feat:
            fake_features = inner_d(fake_pairs, return_features=True)
            g_gan = parts.gan_loss.generator_loss([scale[-1] for scale in fake_features])
        else:
            g_gan = parts.gan_loss.generator_loss(inner_d(fake_pairs))
        g_l1 = l1_loss(fake_b, real_b)
        loss_g = g_gan + parts.lambda_l1 * g_l1
        if parts.lambda_feat:
            with torch.no_grad():
                real_features = inner_d(torch.cat([real_a, real_b], dim=1), return_features=True)
            g_feat = feature_matching_loss(real_features, fake_features, inner_d.n_layers, inner_d.num_D)
            loss_g = loss_g + parts.lambda_feat * g_feat
            losses["loss_G_feat"] = g_feat.detach()
        if parts.vgg_loss is not None:
            g_vgg = parts.vgg_loss(fake_b, real_b)
            loss_g = loss_g + parts.lambda_vgg * g_vgg
            losses["loss_G_VGG"] = g_vgg.detach()
        if kl is not None:
            loss_g = loss_g + parts.lambda_kl * kl
            losses["loss_G_KL"] = kl.detach()
    if parts.scaler_g is None:
        accelerator.backward(loss_g)
    else:  # Accelerate's backward would scale by D's scaler
        parts.scaler_g.scale(loss_g / accelerator.gradient_accumulation_steps).backward()
    losses.update(loss_G_GAN=g_gan.detach(), loss_G_L1=g_l1.detach())
    return losses
