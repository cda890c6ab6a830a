"""ResNet-block generator (Johnson et al. 2016 as used by the pix2pix/CycleGAN authors)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .interface import Generator
from .layers import Tanh, check_input, conv_bias, init_weights, norm_layer
from .registry import generator_class, register_generator
from .winograd import WinogradConv2d


class ResnetBlock(nn.Module):
    """``x + conv-norm-relu-(dropout)-conv-norm(x)`` with reflection padding; shape preserved."""

    def __init__(self, width: int, norm: str, dropout: float) -> None:
        super().__init__()
        bias = conv_bias(norm)
        # The blocks hold most of the FLOPs: Winograd F(4x4, 3x3) on a CPU, 4x fewer multiplies (same maths).
        layers = [nn.ReflectionPad2d(1), WinogradConv2d(width, width, 3, bias=bias), norm_layer(norm, width), nn.ReLU()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        layers += [nn.ReflectionPad2d(1), WinogradConv2d(width, width, 3, bias=bias), norm_layer(norm, width)]
        self.block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x)


@generator_class
class ResnetGenerator(Generator):
    """``c7s1-ngf, d2ngf, d4ngf, R4ngf x n_blocks, u2ngf, ungf, c7s1-out`` with a Tanh output.

    Input ``(N, in_channels, H, W)`` with H and W divisible by 4; output ``(N, out_channels, H, W)``.
    ``enable_gradient_checkpointing()`` recomputes each block's activations in the backward pass (less memory).
    """

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 3,
        ngf: int = 64,
        n_blocks: int = 9,
        norm: str = "batch",
        dropout: float = 0.5,
        init_type: str = "normal",
        init_gain: float = 0.02,
    ) -> None:
        super().__init__()
        if n_blocks < 0:
            raise ValueError(f"n_blocks={n_blocks} must be 0 or more (the presets use 6 and 9).")
        self.in_channels = in_channels
        self.out_channels = out_channels
        bias = conv_bias(norm)
        layers = [nn.ReflectionPad2d(3), nn.Conv2d(in_channels, ngf, 7, bias=bias), norm_layer(norm, ngf), nn.ReLU()]
        for mult in (1, 2):
            layers += [
                nn.Conv2d(ngf * mult, ngf * mult * 2, 3, stride=2, padding=1, bias=bias),
                norm_layer(norm, ngf * mult * 2),
                nn.ReLU(),
            ]
        layers += [ResnetBlock(ngf * 4, norm, dropout) for _ in range(n_blocks)]
        for mult in (4, 2):
            layers += [
                nn.ConvTranspose2d(ngf * mult, ngf * mult // 2, 3, stride=2, padding=1, output_padding=1, bias=bias),
                norm_layer(norm, ngf * mult // 2),
                nn.ReLU(),
            ]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, out_channels, 7), Tanh()]
        self.layers = nn.Sequential(*layers)
        init_weights(self, init_type, init_gain)

    @property
    def size_multiple(self) -> int:
        """Height and width must be multiples of this (two stride-2 downsamplings)."""
        return 4

    @property
    def min_size(self) -> int:
        """Smallest side: the reflection padding of the residual blocks needs a 2x2 bottleneck."""
        return 8

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, self.in_channels, self.size_multiple, "ResnetGenerator")
        return self.run_sequential(self.layers, x)


@register_generator
def resnet_6blocks(**kwargs: Any) -> ResnetGenerator:
    """Six residual blocks: the authors' choice for 128x128 images."""
    return ResnetGenerator(n_blocks=6, **kwargs)


@register_generator
def resnet_9blocks(**kwargs: Any) -> ResnetGenerator:
    """Nine residual blocks: the authors' choice for 256x256 images and larger."""
    return ResnetGenerator(n_blocks=9, **kwargs)
