"""The pix2pix networks. Pure torch + PyTorchModelHubMixin: nothing here imports data, training or UI code.

Names of presets and network classes live in one place, ``registry``; importing this package registers them all.
"""

from __future__ import annotations

from .discriminator import PatchDiscriminator, imagegan, patchgan, patchgan_70, pixelgan
from .hub import HubModel, WeightsNotFoundError
from .layers import init_weights
from .registry import (
    DISCRIMINATOR_CLASSES,
    DISCRIMINATOR_PRESETS,
    GENERATOR_CLASSES,
    GENERATOR_PRESETS,
    build_discriminator,
    build_generator,
    generator_size_multiple,
)
from .resnet import ResnetGenerator, resnet_6blocks, resnet_9blocks
from .unet import UNetGenerator, unet_128, unet_256

__all__ = [
    "DISCRIMINATOR_CLASSES",
    "DISCRIMINATOR_PRESETS",
    "GENERATOR_CLASSES",
    "GENERATOR_PRESETS",
    "HubModel",
    "PatchDiscriminator",
    "ResnetGenerator",
    "UNetGenerator",
    "WeightsNotFoundError",
    "build_discriminator",
    "build_generator",
    "generator_size_multiple",
    "imagegan",
    "init_weights",
    "patchgan",
    "patchgan_70",
    "pixelgan",
    "resnet_6blocks",
    "resnet_9blocks",
    "unet_128",
    "unet_256",
]
