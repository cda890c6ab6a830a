"""The pix2pix networks. Pure torch + PyTorchModelHubMixin: nothing here imports data, training or UI code."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .discriminator import PatchDiscriminator, imagegan, patchgan_70, pixelgan
from .hub import HubModel, WeightsNotFoundError
from .layers import init_weights
from .resnet import ResnetGenerator, resnet_6blocks, resnet_9blocks
from .unet import UNetGenerator, unet_128, unet_256

GENERATOR_PRESETS: dict[str, Callable[..., HubModel]] = {
    "unet_128": unet_128,
    "unet_256": unet_256,
    "resnet_6blocks": resnet_6blocks,
    "resnet_9blocks": resnet_9blocks,
}
DISCRIMINATOR_PRESETS: dict[str, Callable[..., PatchDiscriminator]] = {
    "basic": patchgan_70,
    "pixel": pixelgan,
    "image": imagegan,
}


def _build(kind: str, presets: dict[str, Callable[..., Any]], name: str, kwargs: dict[str, Any]) -> Any:
    if name not in presets:
        raise ValueError(f"Unknown {kind} preset {name!r}; choose one of {', '.join(presets)}.")
    return presets[name](**kwargs)


def build_generator(name: str, **kwargs: Any) -> UNetGenerator | ResnetGenerator:
    """A generator preset by name (``unet_128``, ``unet_256``, ``resnet_6blocks``, ``resnet_9blocks``)."""
    return _build("generator", GENERATOR_PRESETS, name, kwargs)


def build_discriminator(name: str, **kwargs: Any) -> PatchDiscriminator:
    """A discriminator preset by name: ``basic`` (70x70), ``pixel`` (1x1) or ``image`` (whole image)."""
    return _build("discriminator", DISCRIMINATOR_PRESETS, name, kwargs)


__all__ = [
    "DISCRIMINATOR_PRESETS",
    "GENERATOR_PRESETS",
    "HubModel",
    "PatchDiscriminator",
    "ResnetGenerator",
    "UNetGenerator",
    "WeightsNotFoundError",
    "build_discriminator",
    "build_generator",
    "imagegan",
    "init_weights",
    "patchgan_70",
    "pixelgan",
    "resnet_6blocks",
    "resnet_9blocks",
    "unet_128",
    "unet_256",
]
