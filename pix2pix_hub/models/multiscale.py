"""pix2pixHD's multi-scale discriminator (Wang et al. 2018, section 3.2): conditional PatchGANs at several scales.

Each scale is our ``PatchDiscriminator`` (same layers, same Winograd stride-1 conv); scale k judges the pair
average-pooled k times, so the coarsest one sees the most context with the same weights' budget.

How a trainer consumes it: ``forward`` returns a *list* of per-scale logits, finest first. pix2pixHD sums its GAN
loss over the scales (it keeps ``lambda_feat`` = 10 balanced against that sum), so ``GANLoss`` should apply its
per-tensor loss to each scale and add them up; with ``num_D=1`` that is exactly today's loss on one tensor.
``forward(pair, return_features=True)`` (``features(pair)`` outside DDP) also returns every scale's intermediate
activations, for the feature-matching loss in ``training.losses``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .checkpointing import segments
from .discriminator import PatchDiscriminator, patch_logit_side
from .interface import Discriminator
from .registry import discriminator_class, register_discriminator


def patch_features(discriminator: PatchDiscriminator, pair: torch.Tensor) -> list[torch.Tensor]:
    """A PatchGAN's activations after each LeakyReLU, then its logits (pix2pixHD's ``getIntermFeat``):
    ``n_layers + 2`` tensors for ``n_layers >= 1``, the last ``(N, 1, H', W')``. Its segments end at those
    LeakyReLUs, so with gradient checkpointing each one is recomputed in the backward pass on its own."""
    features = []
    for segment in segments(discriminator.layers):
        pair = discriminator.run_segment(segment, pair)
        features.append(pair)
    return features


@discriminator_class
class MultiscaleDiscriminator(Discriminator):
    """``num_D`` conditional PatchGANs of ``n_layers`` layers; scale k sees ``cat(input, output)`` average-pooled
    k times (3x3, stride 2, padding 1, padded pixels not counted).

    Input ``(N, in_channels, H, W)``; ``forward`` returns ``num_D`` logit maps ``(N, 1, H_k', W_k')``, finest
    first; with ``return_features=True`` one list per scale of ``n_layers + 2`` activations, the last the logits.
    Defaults are pix2pixHD's (``--num_D 2 --n_layers_D 3 --norm instance``). ``enable_gradient_checkpointing()``
    and ``disable_winograd()`` act on every scale.
    """

    multiscale = True

    def __init__(
        self,
        in_channels: int = 6,
        ndf: int = 64,
        n_layers: int = 3,
        norm: str = "instance",
        num_D: int = 2,
        init_type: str = "normal",
        init_gain: float = 0.02,
    ) -> None:
        super().__init__()
        if num_D < 1:
            raise ValueError(f"num_D={num_D} must be 1 or more (pix2pixHD uses 2 or 3).")
        if n_layers < 1:
            raise ValueError(f"n_layers={n_layers} must be 1 or more (pix2pixHD uses 3): each scale is a PatchGAN.")
        self.in_channels = in_channels
        self.n_layers = n_layers
        self.num_D = num_D
        self.scales = nn.ModuleList(
            PatchDiscriminator(in_channels, ndf, n_layers, norm, init_type=init_type, init_gain=init_gain)
            for _ in range(num_D)
        )
        self.downsample = nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False)

    @property
    def receptive_fields(self) -> tuple[int, ...]:
        """Side, in input pixels, of the patch one logit of each scale sees, finest first: each 3x3 stride-2
        pooling turns a field f into 2f + 1 (70, 141, 283 for the 70x70 PatchGAN)."""
        fields = [self.scales[0].receptive_field]
        for _ in range(1, self.num_D):
            fields.append(2 * fields[-1] + 1)
        return tuple(fields)

    @property
    def receptive_field(self) -> int:
        """The coarsest scale's field: the largest patch any logit sees (what the model card shows)."""
        return self.receptive_fields[-1]

    @property
    def min_size(self) -> int:
        """Smallest input side for which the coarsest scale still yields a logit: each pooling halves rounding up,
        so the coarsest scale sees ``ceil(side / 2 ** (num_D - 1))`` and needs its PatchGAN's ``min_size``."""
        return (self.scales[0].min_size - 1) * 2 ** (self.num_D - 1) + 1

    def logit_sizes(self, height: int, width: int) -> list[tuple[int, int]]:
        """Each scale's logit map ``(H_k', W_k')``, finest first: scale k judges the pair pooled to
        ``ceil(side / 2 ** k)``."""
        return [
            (patch_logit_side(-(-height // 2**k), self.n_layers), patch_logit_side(-(-width // 2**k), self.n_layers))
            for k in range(self.num_D)
        ]

    def forward(
        self, pair: torch.Tensor, return_features: bool = False
    ) -> list[torch.Tensor] | list[list[torch.Tensor]]:
        if pair.ndim != 4 or pair.shape[1] != self.in_channels:
            raise ValueError(
                f"MultiscaleDiscriminator expects cat(input, output) of shape (N, {self.in_channels}, H, W); "
                f"got {tuple(pair.shape)}."
            )
        outputs = []
        for k, scale in enumerate(self.scales):
            if k:
                pair = self.downsample(pair)
            outputs.append(patch_features(scale, pair) if return_features else scale(pair))
        return outputs

    def features(self, pair: torch.Tensor) -> list[list[torch.Tensor]]:
        """Per scale, finest first, the ``n_layers + 2`` activations of ``forward(pair, return_features=True)``."""
        return self(pair, return_features=True)


@register_discriminator("multiscale")
def multiscale(num_D: int = 2, n_layers: int = 3, **kwargs: Any) -> MultiscaleDiscriminator:
    """pix2pixHD's discriminator (``--netD multiscale --num_D 2|3``): ``num_D`` 70x70 PatchGANs at halving scales."""
    return MultiscaleDiscriminator(n_layers=n_layers, num_D=num_D, **kwargs)
