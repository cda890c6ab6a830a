"""GAN objectives on the discriminator's raw logits, the pix2pix L1 term, and the WGAN-GP gradient penalty.

All losses take logits of any shape ``(N, 1, H', W')`` (one per patch) and return a scalar mean over patches.
The discriminator loss is halved, as in the paper ("we divide the objective by 2 while optimizing D"). A
multi-scale discriminator gives a list of logit maps, one per scale: the GAN losses are summed over it, as
pix2pixHD's ``GANLoss`` does (its ``lambda_feat`` = 10 is balanced against that sum).

pix2pixHD's two extra generator losses (Wang et al. 2018, eq. 4 and section 3.2): feature matching on the
multi-scale discriminator's activations, and a VGG19 perceptual loss. Both return scalars *before* their weights
(``--lambda_feat``, pix2pixHD's 10; ``--lambda_vgg``, pix2pixHD's 10), which the trainer applies.

SPADE's style encoder (Park et al. 2019, section 3.3 and appendix B) adds the KL divergence of its code's
distribution from N(0, I) (``--lambda_kl``, the paper's 0.05), and its code is drawn by the reparameterisation
trick so the encoder learns through the generator's loss.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..constants import GAN_MODES, check_choice
from ..models.vgg import IMAGENET_MEAN, IMAGENET_STD, load_vgg19
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


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)) = -0.5 * sum(1 + logvar - mu^2 - exp(logvar)) over the code's
    dimensions, averaged over the batch: ``mu``, ``logvar`` ``(N, z_dim)`` -> a scalar."""
    per_sample = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp(), dim=1)
    return per_sample.mean()


def reparameterize(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """A code drawn from N(mu, exp(logvar)) as ``mu + eps * exp(logvar / 2)``, ``eps`` ~ N(0, I) from torch's
    global generator (seeded, and restored on resume), so gradients reach ``mu`` and ``logvar``: ``(N, z_dim)``."""
    return mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)


def l1_loss(fake: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean absolute error between ``(N, C, H, W)`` images in [-1, 1] (the paper's L1 term, before ``lambda_l1``)."""
    return F.l1_loss(fake, target)


@contextlib.contextmanager
def direct_convolutions(model: nn.Module) -> Iterator[nn.Module]:
    """Every ``WinogradConv2d`` of ``model`` runs as a plain ``nn.Conv2d`` inside, as it did before on exit, and
    without gradient checkpointing.

    Why: the Winograd Function's backward is not itself differentiable, so a graph of a gradient (the penalty's
    ``create_graph=True``) must be built through the direct convolution; the graph keeps those ops afterwards. A
    checkpointed segment would instead be replayed in the backward pass, after this block, with Winograd on.

    Returns:
        A context manager yielding ``model``.
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
    scaler: Any | None = None,
) -> torch.Tensor:
    """WGAN-GP (Gulrajani et al. 2017): ``mean((||grad D(mix)|| - 1) ** 2)`` on random mixes of real and fake pairs.

    D runs with direct convolutions here, so the penalty's own gradient (a double backward) is exact. Under fp16
    it follows PyTorch's AMP gradient-penalty recipe: the critic is scaled by ``scaler`` before ``autograd.grad``
    (small gradients do not flush to zero in fp16), the gradients unscaled, and the norm taken in fp32.

    Args:
        discriminator: D (a multi-scale one's critic is the sum of its scales).
        real_pairs: ``(N, input_nc + output_nc, H, W)``.
        fake_pairs: the same shape, detached.
        generator: draws the mixing weights (None: the global RNG).
        scaler: the fp16 run's ``GradScaler`` (None: no scaling).

    Returns:
        The penalty, a scalar (not yet weighted by ``lambda_gp``).
    """
    alpha = torch.rand(real_pairs.shape[0], 1, 1, 1, device=real_pairs.device, generator=generator)
    mixed = (alpha * real_pairs + (1 - alpha) * fake_pairs).requires_grad_(True)
    with direct_convolutions(discriminator):
        critic = over_scales(torch.sum, discriminator(mixed))  # a multi-scale critic: the sum of its scales
        if scaler is not None:
            critic = scaler.scale(critic)
        (grads,) = torch.autograd.grad(critic, mixed, create_graph=True)
    grads = grads.float()
    if scaler is not None:
        grads = grads * (1.0 / scaler.get_scale())
    with torch.autocast(grads.device.type, enabled=False):
        return ((grads.flatten(1).norm(2, dim=1) - 1) ** 2).mean()


# pix2pixHD's weights for relu1_1 ... relu5_1: deeper, coarser features count more.
VGG_LAYER_WEIGHTS = (1 / 32, 1 / 16, 1 / 8, 1 / 4, 1.0)


def feature_matching_loss(
    real_features: Sequence[Sequence[torch.Tensor]],
    fake_features: Sequence[Sequence[torch.Tensor]],
    n_layers: int,
    num_D: int,
) -> torch.Tensor:
    """pix2pixHD's feature-matching loss: ``sum over scales i and layers j of 1/num_D * 4/(n_layers+1) *
    L1(fake[i][j], real[i][j].detach())``.

    The logits are left out, as pix2pixHD leaves them out, so with ``n_layers + 2`` tensors per scale
    ``n_layers + 1`` are compared and the weights make each scale's term four times the mean L1 of its layers.

    Args:
        real_features: per scale, the discriminator's activations with the logits last
            (``MultiscaleDiscriminator.features``); detached here: only the generator learns from this loss.
        fake_features: the same for the fake pairs.
        n_layers: each scale's ``n_layers`` (``--n_layers_D``).
        num_D: the number of scales (``--num_D``).

    Returns:
        The loss, a scalar (not yet weighted by ``lambda_feat``).
    """
    if len(real_features) != num_D or len(fake_features) != num_D:
        raise ValueError(f"num_D={num_D} scales expected; got {len(real_features)} real and {len(fake_features)} fake.")
    weight = (1.0 / num_D) * (4.0 / (n_layers + 1))
    loss = fake_features[0][-1].new_zeros(())
    for real_scale, fake_scale in zip(real_features, fake_features, strict=True):
        for real, fake in zip(real_scale[:-1], fake_scale[:-1], strict=True):
            loss = loss + weight * F.l1_loss(fake, real.detach())
    return loss


class VGGLoss(nn.Module):
    """pix2pixHD's perceptual loss: ``sum_k w_k * L1(VGG_k(fake), VGG_k(real).detach())`` over relu1_1 ... relu5_1
    with ``w = 1/32, 1/16, 1/8, 1/4, 1``.

    Takes ``(N, C, H, W)`` images in [-1, 1] with C = 3 (RGB) or 1 (repeated to grey RGB) and maps them to
    ImageNet-normalised RGB first, which torchvision's VGG19 weights expect (pix2pixHD feeds [-1, 1] unnormalised).
    ``weights``: a ``.safetensors`` file, a folder with ``model.safetensors`` or a Hub repo id (``--vgg_weights``);
    the VGG is frozen (no dropout or norm, so train and eval modes compute the same).
    """

    def __init__(self, weights: str | os.PathLike | None, **download_kwargs: Any) -> None:
        super().__init__()
        if not weights:
            raise ValueError(
                "The VGG perceptual loss (--lambda_vgg > 0) needs VGG19 weights and pix2pix_hub downloads none by "
                "itself: pass --vgg_weights with a .safetensors file of torchvision's vgg19 state dict, a folder "
                "holding model.safetensors, or a Hub repo id such as timm/vgg19.tv_in1k; or set --lambda_vgg 0."
            )
        self.vgg = load_vgg19(weights, **download_kwargs)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def normalise(self, images: torch.Tensor) -> torch.Tensor:
        """``(N, 1 or 3, H, W)`` in [-1, 1] -> ``(N, 3, H, W)`` ImageNet-normalised."""
        if images.ndim != 4 or images.shape[1] not in (1, 3):
            raise ValueError(f"VGGLoss takes (N, 3, H, W) or (N, 1, H, W) images; got {tuple(images.shape)}.")
        rgb = images.expand(-1, 3, -1, -1) if images.shape[1] == 1 else images
        return ((rgb + 1) / 2 - self.mean) / self.std

    def forward(self, fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        fake_features = self.vgg(self.normalise(fake))
        with torch.no_grad():
            real_features = self.vgg(self.normalise(real))
        loss = fake.new_zeros(())
        for weight, fake_k, real_k in zip(VGG_LAYER_WEIGHTS, fake_features, real_features, strict=True):
            loss = loss + weight * F.l1_loss(fake_k, real_k)
        return loss
