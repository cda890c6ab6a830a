"""Conditional PatchGAN discriminator (pix2pix paper, section 3.2.2): it judges (input, output) pairs."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from ..constants import NORMS, check_choice
from .interface import Discriminator
from .layers import conv_bias, init_weights, norm_layer
from .registry import discriminator_class, register_discriminator
from .winograd import WinogradConv2d

SPECTRAL_INSTANCE = "spectralinstance"
"""The discriminator-only norm: spectral norm on every conv but the logit one, then instance norm (SPADE's)."""
DISCRIMINATOR_NORMS = (*NORMS, SPECTRAL_INSTANCE)


def patch_logit_side(side: int, n_layers: int) -> int:
    """Side of a PatchGAN's logit map for an input ``side``: its ``n_layers`` stride-2 4x4 convs (padding 1) each
    floor-halve, then its two stride-1 4x4 convs take 1 each; 0 when nothing is left. A PixelGAN keeps the side."""
    if n_layers == 0:
        return side
    for _ in range(n_layers):
        side = (side + 2 - 4) // 2 + 1
    return max(side - 2, 0)


@discriminator_class
class PatchDiscriminator(Discriminator):
    """Classifies each NxN patch of ``cat(input, output)`` as real or fake; returns raw logits.

    ``n_layers`` sets the receptive field: 0 is the 1x1 PixelGAN, 1 is 16x16, 3 is the paper's 70x70
    (30x30 logits for a 256x256 input), 5 is 286x286. ``whole_image=True`` averages the logits into one
    score per image (the paper's ImageGAN when the receptive field covers the image).

    Input ``(N, in_channels, H, W)`` where ``in_channels`` = input channels + output channels (6 for RGB to RGB);
    output ``(N, 1, H', W')`` logits, or ``(N, 1, 1, 1)`` with ``whole_image``.
    ``enable_gradient_checkpointing()`` recomputes each block's activations in the backward pass (less memory);
    ``disable_winograd()`` runs the stride-1 conv directly. ``norm="spectralinstance"`` (GauGAN's) wraps every conv
    but the logit conv in spectral norm (``torch.nn.utils.parametrizations.spectral_norm``) and uses instance norm.
    """

    def __init__(
        self,
        in_channels: int = 6,
        ndf: int = 64,
        n_layers: int = 3,
        norm: str = "batch",
        whole_image: bool = False,
        init_type: str = "normal",
        init_gain: float = 0.02,
    ) -> None:
        super().__init__()
        if n_layers < 0:
            raise ValueError(f"n_layers={n_layers} must be 0 (PixelGAN) or more; 3 is the 70x70 PatchGAN.")
        self.in_channels = in_channels
        self.n_layers = n_layers
        self.whole_image = whole_image
        check_choice("norm", norm, DISCRIMINATOR_NORMS)
        spectral = norm == SPECTRAL_INSTANCE
        norm = "instance" if spectral else norm
        bias = conv_bias(norm)
        if n_layers == 0:
            layers = [
                nn.Conv2d(in_channels, ndf, 1),
                nn.LeakyReLU(0.2),
                nn.Conv2d(ndf, ndf * 2, 1, bias=bias),
                norm_layer(norm, ndf * 2),
                nn.LeakyReLU(0.2),
                nn.Conv2d(ndf * 2, 1, 1, bias=bias),
            ]
        else:
            layers = [nn.Conv2d(in_channels, ndf, 4, 2, 1), nn.LeakyReLU(0.2)]
            width = ndf
            for n in range(1, n_layers + 1):
                next_width = ndf * min(2**n, 8)
                stride = 2 if n < n_layers else 1
                # The stride-1 conv is a large share of a training step: Winograd on a CPU (same maths).
                conv = nn.Conv2d if stride == 2 else WinogradConv2d
                layers += [
                    conv(width, next_width, 4, stride, 1, bias=bias),
                    norm_layer(norm, next_width),
                    nn.LeakyReLU(0.2),
                ]
                width = next_width
            layers.append(nn.Conv2d(width, 1, 4, 1, 1))
        self.layers = nn.Sequential(*layers)
        init_weights(self, init_type, init_gain)
        if spectral:  # after init: the power iteration starts from the drawn weights
            for layer in self.layers[:-1]:
                if isinstance(layer, nn.Conv2d):
                    spectral_norm(layer)

    @property
    def receptive_field(self) -> int:
        """Side, in input pixels, of the patch one output logit sees."""
        if self.n_layers == 0:
            return 1
        field = 4 + 3  # the two stride-1 4x4 convs at the top
        for _ in range(self.n_layers):
            field = (field - 1) * 2 + 4
        return field

    @property
    def min_size(self) -> int:
        """Smallest side with a non-empty logit map: ``3 * 2 ** n_layers`` (1 for the PixelGAN)."""
        return 3 * 2**self.n_layers if self.n_layers else 1

    def logit_sizes(self, height: int, width: int) -> list[tuple[int, int]]:
        """The one logit map's ``(H', W')`` (before ``whole_image`` averages it to ``(1, 1)``)."""
        return [(patch_logit_side(height, self.n_layers), patch_logit_side(width, self.n_layers))]

    def forward(self, pair: torch.Tensor) -> torch.Tensor:
        if pair.ndim != 4 or pair.shape[1] != self.in_channels:
            raise ValueError(
                f"PatchDiscriminator expects cat(input, output) of shape (N, {self.in_channels}, H, W); "
                f"got {tuple(pair.shape)}."
            )
        logits = self.run_sequential(self.layers, pair)
        if self.whole_image:
            return logits.mean(dim=(2, 3), keepdim=True)
        return logits


@register_discriminator("pixel")
def pixelgan(**kwargs: Any) -> PatchDiscriminator:
    """1x1 PixelGAN: judges each pixel's colour only."""
    return PatchDiscriminator(n_layers=0, **kwargs)


@register_discriminator("basic")
def patchgan_70(**kwargs: Any) -> PatchDiscriminator:
    """The paper's 70x70 PatchGAN."""
    return PatchDiscriminator(n_layers=3, **kwargs)


@register_discriminator("n_layers")
def patchgan(n_layers: int = 3, **kwargs: Any) -> PatchDiscriminator:
    """A PatchGAN of any depth (``--netD n_layers --n_layers_D N``): receptive field 16, 34, 70, 142, 286..."""
    return PatchDiscriminator(n_layers=n_layers, **kwargs)


@register_discriminator("image")
def imagegan(**kwargs: Any) -> PatchDiscriminator:
    """286x286 receptive field averaged to one logit per image: the paper's whole-image GAN."""
    return PatchDiscriminator(n_layers=5, whole_image=True, **kwargs)
