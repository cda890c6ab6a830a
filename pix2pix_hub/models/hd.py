"""pix2pixHD's coarse-to-fine generators (Wang et al. 2018, section 3.2): ``GlobalGenerator`` and ``LocalEnhancer``.

The global generator (G1) is a ResNet generator with ``n_downsample`` halvings; the local enhancer (G2) runs G1,
minus its output layers, on the input downsampled 2x and adds G1's last features to those of a full-resolution
branch, which then finishes the image. pix2pixHD's recipe: train G1 alone, load it into G2 with
``LocalEnhancer.load_global``, train only the local branch (``local_parameters()``) for a few epochs, then all.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from .checkpointing import GradientCheckpointing
from .interface import Generator
from .layers import Tanh, check_input, conv_bias, init_weights, norm_layer
from .registry import generator_class, register_generator
from .resnet import ResnetBlock


def conv_norm_relu(
    in_width: int, out_width: int, norm: str, kernel: int = 3, stride: int = 1, transposed: bool = False
) -> list[nn.Module]:
    """A 7x7 reflection-padded conv (``kernel=7``: ``(N, in, H, W)`` -> ``(N, out, H, W)``), a 3x3 stride-2 conv
    (-> ``(N, out, H/2, W/2)``), or a 3x3 stride-2 transposed conv (``output_padding=1``: -> ``(N, out, 2H, 2W)``),
    each followed by norm and ReLU."""
    bias = conv_bias(norm)
    if transposed:
        conv = nn.ConvTranspose2d(in_width, out_width, 3, stride=2, padding=1, output_padding=1, bias=bias)
        return [conv, norm_layer(norm, out_width), nn.ReLU()]
    pad = [nn.ReflectionPad2d(kernel // 2)] if kernel == 7 else []
    conv = nn.Conv2d(in_width, out_width, kernel, stride=stride, padding=0 if pad else 1, bias=bias)
    return [*pad, conv, norm_layer(norm, out_width), nn.ReLU()]


def output_head(width: int, out_channels: int) -> nn.Sequential:
    """``c7s1-out`` + Tanh: features ``(N, width, H, W)`` -> image ``(N, out_channels, H, W)`` in [-1, 1]."""
    return nn.Sequential(nn.ReflectionPad2d(3), nn.Conv2d(width, out_channels, 7), Tanh())


def global_body(
    in_channels: int, ngf: int, n_downsample: int, n_blocks: int, norm: str, dropout: float
) -> nn.Sequential:
    """G1 without its output head: ``c7s1-ngf``, ``n_downsample`` x (3x3 stride-2 conv, width doubling),
    ``n_blocks`` residual blocks, the mirrored transposed convs. ``(N, in, H, W)`` -> ``(N, ngf, H, W)``."""
    layers = conv_norm_relu(in_channels, ngf, norm, kernel=7)
    for i in range(n_downsample):
        layers += conv_norm_relu(ngf * 2**i, ngf * 2 ** (i + 1), norm, stride=2)
    layers += [ResnetBlock(ngf * 2**n_downsample, norm, dropout) for _ in range(n_blocks)]
    for i in range(n_downsample, 0, -1):
        layers += conv_norm_relu(ngf * 2**i, ngf * 2 ** (i - 1), norm, transposed=True)
    return nn.Sequential(*layers)


def check_depths(**depths: int) -> None:
    for name, value in depths.items():
        if value < 0:
            raise ValueError(f"{name}={value} must be 0 or more.")


@generator_class
class GlobalGenerator(Generator):
    """pix2pixHD's G1: ``c7s1-ngf, d2ngf, ..., d(2^n)ngf, R x n_blocks, u..., c7s1-out`` + Tanh, reflection padding.

    Widths double at each of the ``n_downsample`` stride-2 convs without a cap (ngf 64, 4 halvings: 1024 in the
    blocks, as pix2pixHD). Input ``(N, in_channels, H, W)`` with H and W divisible by ``2 ** n_downsample``;
    output ``(N, out_channels, H, W)``. Defaults are pix2pixHD's (``--ngf 64 --n_downsample_global 4
    --n_blocks_global 9 --norm instance``, no dropout). ``enable_gradient_checkpointing()`` recomputes each block's
    activations in the backward pass (less memory at high resolution).
    """

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 3,
        ngf: int = 64,
        n_downsample: int = 4,
        n_blocks: int = 9,
        norm: str = "instance",
        dropout: float = 0.0,
        init_type: str = "normal",
        init_gain: float = 0.02,
    ) -> None:
        super().__init__()
        check_depths(n_downsample=n_downsample, n_blocks=n_blocks)
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.n_downsample = n_downsample
        self.body = global_body(in_channels, ngf, n_downsample, n_blocks, norm, dropout)
        self.head = output_head(ngf, out_channels)
        init_weights(self, init_type, init_gain)

    @property
    def size_multiple(self) -> int:
        """Height and width must be multiples of this (``n_downsample`` halvings)."""
        return 2**self.n_downsample

    @property
    def min_size(self) -> int:
        """Smallest side: the blocks' reflection padding needs a 2x2 bottleneck, the 7x7 one a 4x4 input."""
        return max(2 * self.size_multiple, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, self.in_channels, self.size_multiple, "GlobalGenerator")
        return self.run_segment(self.head, self.run_sequential(self.body, x))


class LocalBranch(GradientCheckpointing, nn.Module):
    """One enhancer of G2 at width ``w``: ``down`` (c7s1-w, 3x3 stride-2 conv to 2w) takes the image at this scale;
    ``up`` (residual blocks at 2w, transposed conv to w) takes ``down(image) + coarser features``."""

    def __init__(self, in_channels: int, width: int, n_blocks: int, norm: str, dropout: float) -> None:
        super().__init__()
        self.down = nn.Sequential(
            *conv_norm_relu(in_channels, width, norm, kernel=7), *conv_norm_relu(width, 2 * width, norm, stride=2)
        )
        blocks = [ResnetBlock(2 * width, norm, dropout) for _ in range(n_blocks)]
        self.up = nn.Sequential(*blocks, *conv_norm_relu(2 * width, width, norm, transposed=True))

    def forward(self, image: torch.Tensor, coarser: torch.Tensor) -> torch.Tensor:
        """``image`` ``(N, in, H, W)`` and ``coarser`` ``(N, 2w, H/2, W/2)`` -> ``(N, w, H, W)``."""
        return self.run_sequential(self.up, self.run_sequential(self.down, image) + coarser)


@generator_class
class LocalEnhancer(Generator):
    """pix2pixHD's G2: G1's body (width ``ngf * 2 ** n_local_enhancers``) on the input average-pooled
    ``n_local_enhancers`` times, then one ``LocalBranch`` per enhancer, coarse to fine, each halving the width and
    doubling the size, and a ``c7s1-out`` + Tanh head.

    Input ``(N, in_channels, H, W)`` with H and W divisible by ``2 ** (n_downsample_global + n_local_enhancers)``;
    output ``(N, out_channels, H, W)``. Defaults are pix2pixHD's (``--netG local --ngf 32``, 3 local blocks).
    ``enable_gradient_checkpointing()`` covers the global part and the branches.
    """

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 3,
        ngf: int = 32,
        n_downsample_global: int = 4,
        n_blocks_global: int = 9,
        n_local_enhancers: int = 1,
        n_blocks_local: int = 3,
        norm: str = "instance",
        dropout: float = 0.0,
        init_type: str = "normal",
        init_gain: float = 0.02,
    ) -> None:
        super().__init__()
        check_depths(n_downsample_global=n_downsample_global, n_blocks_global=n_blocks_global)
        check_depths(n_blocks_local=n_blocks_local)
        if n_local_enhancers < 1:
            raise ValueError(f"n_local_enhancers={n_local_enhancers} must be 1 or more (pix2pixHD uses 1).")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.n_downsample_global = n_downsample_global
        self.n_local_enhancers = n_local_enhancers
        self._global_config = {
            "in_channels": in_channels,
            "ngf": ngf * 2**n_local_enhancers,
            "n_downsample": n_downsample_global,
            "n_blocks": n_blocks_global,
            "norm": norm,
        }
        self.global_body = global_body(dropout=dropout, **self._global_config)
        # Same pooling as pix2pixHD: border pixels average only the pixels inside the image.
        self.downsample = nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False)
        widths = [ngf * 2 ** (n_local_enhancers - n) for n in range(1, n_local_enhancers + 1)]  # coarse to fine
        self.branches = nn.ModuleList(LocalBranch(in_channels, w, n_blocks_local, norm, dropout) for w in widths)
        self.head = output_head(ngf, out_channels)
        init_weights(self, init_type, init_gain)

    @property
    def size_multiple(self) -> int:
        """Height and width must be multiples of this: the global body halves the pooled input further."""
        return 2 ** (self.n_downsample_global + self.n_local_enhancers)

    @property
    def min_size(self) -> int:
        """Smallest side: a 2x2 bottleneck for the global blocks' padding and a 4x4 pooled input for its 7x7 one."""
        return max(2 * self.size_multiple, 4 * 2**self.n_local_enhancers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, self.in_channels, self.size_multiple, "LocalEnhancer")
        pyramid = [x]
        for _ in range(self.n_local_enhancers):
            pyramid.append(self.downsample(pyramid[-1]))
        features = self.run_sequential(self.global_body, pyramid.pop())
        for branch in self.branches:
            features = branch(pyramid.pop(), features)
        return self.run_segment(self.head, features)

    def global_config(self) -> dict[str, Any]:
        """The ``GlobalGenerator`` arguments whose body fits this enhancer's global part (train that one first)."""
        return dict(self._global_config)

    def load_global(self, generator: GlobalGenerator) -> LocalEnhancer:
        """Copy a trained ``GlobalGenerator``'s body into this enhancer's global part (its head is not used, as in
        pix2pixHD). The generator must match ``global_config()``: ``ngf`` = this ``ngf * 2 ** n_local_enhancers``,
        the same input channels, depths and norm. Returns ``self``."""
        if not isinstance(generator, GlobalGenerator):
            raise TypeError(f"load_global takes a GlobalGenerator, not a {type(generator).__name__}.")
        mismatched = {key: value for key, value in self._global_config.items() if generator.config.get(key) != value}
        if mismatched:
            got = {key: generator.config.get(key) for key in mismatched}
            raise ValueError(f"This LocalEnhancer needs a GlobalGenerator with {mismatched}; got one with {got}.")
        self.global_body.load_state_dict(generator.body.state_dict())
        return self

    def local_parameters(self) -> Iterator[nn.Parameter]:
        """Every parameter outside the global part (the local branches and the head): what pix2pixHD trains alone
        for the first ``--niter_fix_global`` epochs."""
        global_ids = {id(p) for p in self.global_body.parameters()}
        return (p for p in self.parameters() if id(p) not in global_ids)


@register_generator(name="global")
def global_generator(**kwargs: Any) -> GlobalGenerator:
    """pix2pixHD's global generator (``--netG global``): 4 halvings, 9 residual blocks."""
    return GlobalGenerator(**kwargs)


@register_generator(name="local")
def local_enhancer(**kwargs: Any) -> LocalEnhancer:
    """pix2pixHD's local enhancer (``--netG local``): the global generator at half size plus one local branch."""
    return LocalEnhancer(**kwargs)
