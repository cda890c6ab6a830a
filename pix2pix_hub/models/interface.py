"""What every pix2pix network declares about itself: the ``Generator`` and ``Discriminator`` bases.

The registry, training's checks, the pipeline, the exporter and the card read a network's shape facts (the sides it
takes, what it returns for them, whether it judges at several scales) from these, never from preset names or
``getattr`` defaults. Both bases carry the two switches of every network, diffusers-style and never saved:
``enable_gradient_checkpointing()`` / ``disable_gradient_checkpointing()`` and ``enable_winograd()`` /
``disable_winograd()``. They add no parameters, buffers or constructor arguments, so state dicts and
``config.json`` are those of ``HubModel``.
"""

from __future__ import annotations

from abc import ABCMeta, abstractmethod
from typing import ClassVar

from .checkpointing import GradientCheckpointing
from .hub import HubModel
from .winograd import WinogradSwitch


class Generator(GradientCheckpointing, WinogradSwitch, HubModel, metaclass=ABCMeta):
    """An image-to-image network: ``(N, in_channels, H, W)`` -> ``(N, out_channels, H, W)`` in [-1, 1].

    H and W must be multiples of ``size_multiple`` and at least ``min_size``; ``output_size`` says what comes out.
    """

    in_channels: int
    out_channels: int

    @property
    @abstractmethod
    def size_multiple(self) -> int:
        """Height and width must be multiples of this (2 to the number of halvings)."""

    @property
    def min_size(self) -> int:
        """Smallest side it takes: one size multiple, unless a subclass needs more (reflection padding does)."""
        return self.size_multiple

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        """The output's ``(H, W)`` for an ``(H, W)`` input: the same sides.

        Args:
            height: Input height in pixels.
            width: Input width in pixels.

        Returns:
            ``(height, width)``.

        Raises:
            ValueError: a side is not a multiple of ``size_multiple`` or is below ``min_size``.
        """
        multiple, smallest = self.size_multiple, self.min_size
        if height % multiple or width % multiple or min(height, width) < smallest:
            raise ValueError(
                f"{type(self).__name__} takes sides that are multiples of {multiple} and at least {smallest}; "
                f"got {height}x{width}."
            )
        return height, width


class Discriminator(GradientCheckpointing, WinogradSwitch, HubModel, metaclass=ABCMeta):
    """A conditional discriminator: ``cat(input, output)`` ``(N, in_channels, H, W)`` -> patch logits.

    A single-scale one returns one map ``(N, 1, H', W')``; a multi-scale one (``multiscale``) a list of maps, one
    per scale, finest first, and can also return every scale's intermediate features (pix2pixHD's feature matching).
    """

    multiscale: ClassVar[bool] = False
    """Whether ``forward`` returns one logit map per scale (and takes ``return_features``): a class fact, so a
    preset's class answers it without building a network."""
    in_channels: int
    n_layers: int

    @property
    @abstractmethod
    def receptive_field(self) -> int:
        """Side, in input pixels, of the largest patch one logit sees (what the model card shows)."""

    @property
    @abstractmethod
    def min_size(self) -> int:
        """Smallest input side for which every logit map is non-empty."""

    @abstractmethod
    def logit_sizes(self, height: int, width: int) -> list[tuple[int, int]]:
        """``(H', W')`` of each patch-logit map for an ``(H, W)`` input, finest scale first; a 0 side means the
        input is too small for that map."""
