"""pix2pixHD's two extra generator losses (Wang et al. 2018, eq. 4 and section 3.2): feature matching on the
multi-scale discriminator's activations, and a VGG19 perceptual loss. Both return scalars *before* their weights
(``--lambda_feat``, pix2pixHD's 10; ``--lambda_vgg``, pix2pixHD's 10), which the trainer applies.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .models.vgg import IMAGENET_MEAN, IMAGENET_STD, load_vgg19

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

    ``real_features``/``fake_features``: per scale, the discriminator's activations with the logits last
    (``MultiscaleDiscriminator.features``); the logits are left out, as pix2pixHD leaves them out, so with
    ``n_layers + 2`` tensors per scale ``n_layers + 1`` are compared and the weights make each scale's term four
    times the mean L1 of its layers. Real features are detached: only the generator learns from this loss.
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
