"""U-Net generator with skip connections (pix2pix paper, section 3.1.1 and appendix 6.1.1)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .interface import Generator
from .layers import Tanh, check_input, conv_bias, init_weights, norm_layer
from .registry import generator_class, register_generator


@generator_class
class UNetGenerator(Generator):
    """Encoder-decoder with a skip connection between mirrored layers.

    Encoder ``C64-C128-C256-C512-C512-...`` (4x4 stride-2 convs, LeakyReLU 0.2, no norm on the first),
    decoder mirrors it with 4x4 transposed convs, ReLU and dropout in ``num_dropout`` decoder blocks; the output is
    Tanh in [-1, 1]. ``dropout_offset`` is how many of the innermost decoder blocks come before the first one with
    dropout: 0 is the paper's decoder (CD512 right after the bottleneck), 1 the authors' code, whose dropout sits
    one level further out (their ``unet_256`` converts to ``num_dropout=3, dropout_offset=1``). It matters only
    where dropout is on: training, or ``dropout_at_test``.

    Input ``(N, in_channels, H, W)`` with H and W divisible by ``2 ** num_downs``; output
    ``(N, out_channels, H, W)``. ``num_downs=8`` turns a 256x256 image into a 1x1 bottleneck.
    ``enable_gradient_checkpointing()`` recomputes each level's activations in the backward pass (less memory).
    """

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 3,
        num_downs: int = 8,
        ngf: int = 64,
        norm: str = "batch",
        dropout: float = 0.5,
        num_dropout: int = 3,
        dropout_offset: int = 0,
        init_type: str = "normal",
        init_gain: float = 0.02,
    ) -> None:
        super().__init__()
        if num_downs < 2:
            raise ValueError(f"num_downs={num_downs} is too shallow; use at least 2 (the paper uses 7 or 8).")
        if dropout_offset < 0:
            raise ValueError(f"dropout_offset={dropout_offset} must be 0 (the paper) or more (1: the authors' code).")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.num_downs = num_downs
        bias = conv_bias(norm)
        widths = [ngf * min(2**i, 8) for i in range(num_downs)]

        # The outermost and innermost encoder convs have no norm after them, so they keep their bias.
        encoders = [nn.Conv2d(in_channels, widths[0], 4, 2, 1)]
        for i in range(1, num_downs - 1):
            encoders.append(
                nn.Sequential(
                    nn.LeakyReLU(0.2),
                    nn.Conv2d(widths[i - 1], widths[i], 4, 2, 1, bias=bias),
                    norm_layer(norm, widths[i]),
                )
            )
        encoders.append(nn.Sequential(nn.LeakyReLU(0.2), nn.Conv2d(widths[-2], widths[-1], 4, 2, 1)))
        self.encoders = nn.ModuleList(encoders)

        decoders = []
        for depth, i in enumerate(range(num_downs - 1, 0, -1)):
            in_width = widths[i] if i == num_downs - 1 else 2 * widths[i]
            layers = [
                nn.ReLU(),
                nn.ConvTranspose2d(in_width, widths[i - 1], 4, 2, 1, bias=bias),
                norm_layer(norm, widths[i - 1]),
            ]
            if dropout_offset <= depth < dropout_offset + num_dropout and dropout > 0:
                layers.append(nn.Dropout(dropout))
            decoders.append(nn.Sequential(*layers))
        decoders.append(nn.Sequential(nn.ReLU(), nn.ConvTranspose2d(2 * widths[0], out_channels, 4, 2, 1), Tanh()))
        self.decoders = nn.ModuleList(decoders)
        init_weights(self, init_type, init_gain)

    @property
    def size_multiple(self) -> int:
        """Height and width must be multiples of this; one multiple is also the smallest side (``min_size``: the
        innermost level is then 1x1)."""
        return 2**self.num_downs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, self.in_channels, self.size_multiple, f"UNetGenerator(num_downs={self.num_downs})")
        skips = []
        for encoder in self.encoders:
            x = self.run_segment(encoder, x)
            skips.append(x)
        x = skips.pop()
        for decoder in self.decoders:
            x = self.run_segment(decoder, x)
            if skips:
                x = torch.cat([skips.pop(), x], dim=1)
        return x


@register_generator
def unet_128(**kwargs: Any) -> UNetGenerator:
    """The authors' ``unet_128``: 7 downsamplings, for 128x128 crops."""
    return UNetGenerator(num_downs=7, **kwargs)


@register_generator
def unet_256(**kwargs: Any) -> UNetGenerator:
    """The paper's generator: 8 downsamplings, for 256x256 crops (54,414,531 parameters at ngf=64, batch norm)."""
    return UNetGenerator(num_downs=8, **kwargs)


@register_generator
def unet_512(**kwargs: Any) -> UNetGenerator:
    """One level deeper than the paper's: 9 downsamplings, for 512x512 crops (the 1x1 bottleneck at 512)."""
    return UNetGenerator(num_downs=9, **kwargs)
