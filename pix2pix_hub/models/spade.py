"""GauGAN's networks (Park et al., CVPR 2019, "Semantic Image Synthesis with Spatially-Adaptive Normalization").

Written from the paper. ``SPADE`` normalises activations without learned parameters and then scales and shifts
each pixel by amounts predicted from the label map, so the layout reaches every layer instead of being washed out
by normalisation after the input. ``SPADEGenerator`` starts from the label map (or a style code) at a low
resolution and upsamples it through ``SPADEResBlock``s; ``StyleEncoder`` maps a photo to the mean and log-variance
of a style code (the multi-modal, VAE variant).

Spectral norm (``spectral_norm=True``) wraps the residual blocks' convs (both 3x3 convs and the learned 1x1
shortcut) with ``torch.nn.utils.parametrizations.spectral_norm``. Each block reads its (normalised) weights once
per forward pass, outside the gradient-checkpointed part, so a recomputation in the backward pass uses the very
weights of the forward pass and the power iteration runs once per forward, as without checkpointing. The ONNX
exporter cannot trace spectral norm (``vdot``): exports bake the eval-time weights into a copy
(``parametrize.remove_parametrizations(..., leave_parametrized=True)``; inference/export.py). Removing them from a
``deepcopy`` also removes them from the original's class, which the copy shares: bake the copy last, or rebuild.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm as spectral_norm_of
from torch.utils.checkpoint import checkpoint

from ..constants import NORMS, check_choice
from .checkpointing import GradientCheckpointing, replay_contexts
from .interface import Generator
from .layers import Tanh, check_input, init_weights
from .registry import generator_class, register_generator

UPSAMPLINGS = {"normal": 5, "more": 6, "most": 7}
"""``num_upsampling_layers`` -> the number of 2x upsamplings between the lowest resolution and the output."""
Z_GRID = 4
"""The style code's linear layer makes a ``16 ngf x 4 x 4`` map (the paper's figure), resized (nearest) to the
lowest resolution, so one model takes any size."""
STYLE_SIZE = 256
"""``StyleEncoder`` resizes its input to this square first: its six halvings then end on a 4x4 map."""


def parameter_free_norm(norm: str, num_features: int) -> nn.Module:
    """SPADE's normalisation: batch norm (running statistics, no affine), instance norm (no affine), or none."""
    check_choice("norm", norm, NORMS)
    if norm == "batch":
        return nn.BatchNorm2d(num_features, affine=False)
    if norm == "instance":
        return nn.InstanceNorm2d(num_features, affine=False, track_running_stats=False)
    return nn.Identity()


class SPADE(nn.Module):
    """Spatially-adaptive normalisation: ``norm(x) * (1 + gamma) + beta``, gamma and beta ``(N, C, H, W)`` predicted
    per pixel from the label map, resized (nearest) to x's size, by ``conv(L -> hidden) + ReLU`` and two
    ``conv(hidden -> C)`` heads (``kernel_size`` square, same padding).

    ``forward(x (N, C, H, W), segmap (N, L, h, w)) -> (N, C, H, W)``.
    """

    def __init__(
        self, num_features: int, label_channels: int, hidden: int = 128, kernel_size: int = 3, norm: str = "batch"
    ) -> None:
        super().__init__()
        padding = kernel_size // 2
        self.norm = parameter_free_norm(norm, num_features)
        self.shared = nn.Sequential(nn.Conv2d(label_channels, hidden, kernel_size, padding=padding), nn.ReLU())
        self.gamma = nn.Conv2d(hidden, num_features, kernel_size, padding=padding)
        self.beta = nn.Conv2d(hidden, num_features, kernel_size, padding=padding)

    def forward(self, x: torch.Tensor, segmap: torch.Tensor) -> torch.Tensor:
        segmap = F.interpolate(segmap, size=x.shape[-2:], mode="nearest")
        features = self.shared(segmap)
        return self.norm(x) * (1 + self.gamma(features)) + self.beta(features)


class SPADEResBlock(GradientCheckpointing, nn.Module):
    """SPADE's residual block: ``SPADE -> ReLU -> conv3x3`` twice (through ``min(in, out)`` channels), added to the
    input, or to a learned 1x1 conv (no bias) of the input after its own SPADE when the widths differ.

    ``forward(x (N, in, H, W), segmap (N, L, h, w)) -> (N, out, H, W)``. With gradient checkpointing on, the block
    keeps only the inputs and weights of each of its SPADE-conv stages for the backward pass.
    """

    def __init__(
        self, in_width: int, out_width: int, label_channels: int, hidden: int = 128, norm: str = "batch"
    ) -> None:
        super().__init__()
        middle = min(in_width, out_width)
        self.learned_shortcut = in_width != out_width
        self.norm_0 = SPADE(in_width, label_channels, hidden, norm=norm)
        self.conv_0 = nn.Conv2d(in_width, middle, 3, padding=1)
        self.norm_1 = SPADE(middle, label_channels, hidden, norm=norm)
        self.conv_1 = nn.Conv2d(middle, out_width, 3, padding=1)
        if self.learned_shortcut:
            self.norm_s = SPADE(in_width, label_channels, hidden, norm=norm)
            self.conv_s = nn.Conv2d(in_width, out_width, 1, bias=False)

    def convs(self) -> list[nn.Conv2d]:
        """The main path's convs (and the shortcut's): those ``spectral_norm=True`` wraps."""
        return [self.conv_0, self.conv_1, *([self.conv_s] if self.learned_shortcut else [])]

    def forward(self, x: torch.Tensor, segmap: torch.Tensor) -> torch.Tensor:
        # Read once here: spectral norm's power iteration runs on this read, never again in a recomputation.
        weights = [conv.weight for conv in self.convs()]
        hidden = self._stage(self.norm_0, self.conv_0, True, x, segmap, weights[0])
        hidden = self._stage(self.norm_1, self.conv_1, True, hidden, segmap, weights[1])
        if not self.learned_shortcut:
            return x + hidden
        return self._stage(self.norm_s, self.conv_s, False, x, segmap, weights[2]) + hidden

    def _stage(
        self, spade: SPADE, conv: nn.Conv2d, relu: bool, x: torch.Tensor, segmap: torch.Tensor, weight: torch.Tensor
    ) -> torch.Tensor:
        """``conv(relu?(spade(x, segmap)))`` with ``weight``; checkpointed on its own (a SPADE's hidden maps are
        the largest activations, so the backward pass recomputes one SPADE's at a time)."""
        if not self.checkpointing_now:
            return spade_conv(spade, conv, relu, x, segmap, weight)
        return checkpoint(
            spade_conv,
            spade,
            conv,
            relu,
            x,
            segmap,
            weight,
            use_reentrant=False,
            context_fn=lambda: replay_contexts([spade]),
        )


def spade_conv(
    spade: SPADE, conv: nn.Conv2d, relu: bool, x: torch.Tensor, segmap: torch.Tensor, weight: torch.Tensor
) -> torch.Tensor:
    """``conv(relu(spade(x, segmap)))`` (without the ReLU for ``relu=False``), the conv's weight given:
    ``(N, C, H, W)`` -> ``(N, conv.out_channels, H, W)``."""
    normalised = spade(x, segmap)
    return F.conv2d(F.relu(normalised) if relu else normalised, weight, conv.bias, padding=conv.padding)


class StyleEncoder(nn.Module):
    """The style encoder: the image resized (bilinear) to 256x256, six 3x3 stride-2 convs (widths ndf, 2ndf, 4ndf,
    8ndf, 8ndf, 8ndf) each with instance norm (no affine) and LeakyReLU(0.2), then two linear layers from the
    ``8ndf x 4 x 4`` features to the mean and the log-variance of the style code.

    ``forward(style (N, in_channels, H, W)) -> (mu, logvar)``, each ``(N, z_dim)``; any H and W.
    """

    def __init__(self, in_channels: int = 3, ndf: int = 64, z_dim: int = 256) -> None:
        super().__init__()
        self.in_channels = in_channels
        layers: list[nn.Module] = []
        width = in_channels
        for multiple in (1, 2, 4, 8, 8, 8):
            layers += [
                nn.Conv2d(width, ndf * multiple, 3, stride=2, padding=1),
                nn.InstanceNorm2d(ndf * multiple, affine=False, track_running_stats=False),
                nn.LeakyReLU(0.2),
            ]
            width = ndf * multiple
        self.layers = nn.Sequential(*layers)
        features = width * (STYLE_SIZE // 2**6) ** 2
        self.fc_mu = nn.Linear(features, z_dim)
        self.fc_logvar = nn.Linear(features, z_dim)

    def forward(self, style: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if style.ndim != 4 or style.shape[1] != self.in_channels:
            raise ValueError(f"StyleEncoder expects (N, {self.in_channels}, H, W); got {tuple(style.shape)}.")
        if tuple(style.shape[-2:]) != (STYLE_SIZE, STYLE_SIZE):
            style = F.interpolate(style, size=(STYLE_SIZE, STYLE_SIZE), mode="bilinear", align_corners=False)
        features = self.layers(style).flatten(1)
        return self.fc_mu(features), self.fc_logvar(features)


def nearest_resize(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """``(N, C, h, w)`` -> ``(N, C, height, width)``: output pixel ``(i, j)`` is input pixel ``(i h // height,
    j w // width)``. Index arithmetic, not ``F.interpolate``: an ONNX export keeps the channel count known."""
    rows = torch.arange(height, device=x.device) * x.shape[-2] // height
    columns = torch.arange(width, device=x.device) * x.shape[-1] // width
    return x.index_select(2, rows).index_select(3, columns)


def block_plan(ngf: int, num_upsampling_layers: str) -> list[tuple[int, int, bool]]:
    """``(in width, out width, upsample after)`` per residual block, lowest resolution first: 16ngf x3 (with one
    more upsampling between the middle two for ``more``/``most``), then 8, 4, 2, 1 ngf (and ngf/2 for ``most``)."""
    check_choice("num_upsampling_layers", num_upsampling_layers, tuple(UPSAMPLINGS))
    extra = num_upsampling_layers != "normal"
    plan = [(16 * ngf, 16 * ngf, True), (16 * ngf, 16 * ngf, extra), (16 * ngf, 16 * ngf, True)]
    plan += [(16 * ngf, 8 * ngf, True), (8 * ngf, 4 * ngf, True), (4 * ngf, 2 * ngf, True)]
    if num_upsampling_layers == "most":
        return [*plan, (2 * ngf, ngf, True), (ngf, max(ngf // 2, 1), False)]
    return [*plan, (2 * ngf, ngf, False)]


@generator_class
class SPADEGenerator(Generator):
    """GauGAN's generator: label map ``(N, in_channels, H, W)`` (one-hot classes [+ don't care] [+ instance
    edges]) and an optional style code ``z (N, z_dim)`` -> image ``(N, out_channels, H, W)`` in [-1, 1].

    It starts at the lowest resolution ``(H, W) / size_multiple`` (the aspect kept): from the label map resized
    (nearest) there and a 3x3 conv to 16ngf, or with ``use_vae`` from z through a linear layer (a 4x4 map resized
    there). Then ``SPADEResBlock``s with nearest 2x upsampling (``num_upsampling_layers``: ``normal`` 5, ``more``
    6, ``most`` 7), each SPADE reading the full label map, and LeakyReLU(0.2), conv3x3, tanh. ``norm`` is SPADE's
    parameter-free norm (``none``: none at all, for shape-only instances); ``spectral_norm`` wraps the blocks'
    convs. With ``use_vae``, ``encoder`` is a ``StyleEncoder`` (width ``ngf``; saved in the same weights) and
    ``z=None`` means the zero code, the prior's mean; ``encode(photo)`` gives ``(mu, logvar)``.
    """

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 3,
        ngf: int = 64,
        num_upsampling_layers: str = "normal",
        use_vae: bool = False,
        z_dim: int = 256,
        spade_hidden: int = 128,
        norm: str = "batch",
        spectral_norm: bool = True,
        init_type: str = "normal",
        init_gain: float = 0.02,
    ) -> None:
        super().__init__()
        plan = block_plan(ngf, num_upsampling_layers)
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.num_upsampling_layers = num_upsampling_layers
        self.use_vae = use_vae
        self.z_dim = z_dim
        if use_vae:
            self.fc: nn.Module = nn.Linear(z_dim, 16 * ngf * Z_GRID * Z_GRID)
        else:
            self.fc = nn.Conv2d(in_channels, 16 * ngf, 3, padding=1)
        self.blocks = nn.ModuleList(
            SPADEResBlock(width_in, width_out, in_channels, spade_hidden, norm) for width_in, width_out, _ in plan
        )
        self.upsample_after = tuple(up for _, _, up in plan)
        self.head = nn.Sequential(nn.LeakyReLU(0.2), nn.Conv2d(plan[-1][1], out_channels, 3, padding=1), Tanh())
        self.encoder = StyleEncoder(out_channels, ngf, z_dim) if use_vae else None
        init_weights(self, init_type, init_gain)
        if spectral_norm:  # after init: the power iteration starts from the drawn weights
            for block in self.blocks:
                for conv in block.convs():
                    spectral_norm_of(conv)

    @property
    def size_multiple(self) -> int:
        """Height and width must be multiples of this: 2 to the number of upsamplings (32, 64, 128)."""
        return 2 ** UPSAMPLINGS[self.num_upsampling_layers]

    def forward(self, labels: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        check_input(labels, self.in_channels, self.size_multiple, "SPADEGenerator")
        batch, _, height, width = labels.shape
        lowest = (height // self.size_multiple, width // self.size_multiple)
        if self.use_vae:
            if z is None:
                z = labels.new_zeros(batch, self.z_dim)
            if z.shape != (batch, self.z_dim):
                raise ValueError(f"SPADEGenerator expects z of shape ({batch}, {self.z_dim}); got {tuple(z.shape)}.")
            x = self.fc(z).view(batch, self.blocks[0].conv_0.in_channels, Z_GRID, Z_GRID)
            x = nearest_resize(x, *lowest)
        else:
            if z is not None:
                raise ValueError("This SPADEGenerator has no style code (built without use_vae): call it without z.")
            x = self.fc(F.interpolate(labels, size=lowest, mode="nearest"))
        for block, upsample in zip(self.blocks, self.upsample_after):
            x = block(x, labels)
            if upsample:
                x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        return self.head(x)

    def encode(self, style: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The style code's distribution for photos ``(N, out_channels, H, W)`` (any size; resized to 256x256).

        Args:
            style: Photos in [-1, 1].

        Returns:
            ``(mu, logvar)``, each ``(N, z_dim)``.

        Raises:
            ValueError: the generator was built without ``use_vae`` (it has no encoder).
        """
        if self.encoder is None:
            raise ValueError("This SPADEGenerator has no style encoder: build it with use_vae=True.")
        return self.encoder(style)


@register_generator(name="spade")
def spade(**kwargs: Any) -> SPADEGenerator:
    """GauGAN's generator (``--netG spade``). SPADE has no dropout: a ``dropout`` argument (every generator gets
    the trainer's) is ignored."""
    kwargs.pop("dropout", None)
    return SPADEGenerator(**kwargs)
