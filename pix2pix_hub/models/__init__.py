"""The pix2pix networks. Pure torch + PyTorchModelHubMixin: nothing here imports data, training or UI code.

Every network is a ``Generator`` or a ``Discriminator`` (``interface``): the shape facts it declares, and the
``enable_``/``disable_`` switches for gradient checkpointing and Winograd convs. Names of presets and network classes
live in one place, ``registry``; importing this package registers them all.
"""

from __future__ import annotations

from .discriminator import PatchDiscriminator, imagegan, patchgan, patchgan_70, pixelgan
from .hd import GlobalGenerator, LocalEnhancer, global_generator, local_enhancer
from .hub import HubModel, WeightsNotFoundError
from .interface import Discriminator, Generator
from .layers import init_weights
from .multiscale import MultiscaleDiscriminator, multiscale
from .registry import (
    DISCRIMINATOR_CLASSES,
    DISCRIMINATOR_PRESETS,
    GENERATOR_CLASSES,
    GENERATOR_PRESETS,
    build_discriminator,
    build_generator,
    discriminator_class_of,
    generator_class_of,
    generator_size_multiple,
)
from .resnet import ResnetGenerator, resnet_6blocks, resnet_9blocks
from .spade import SPADE, SPADEGenerator, SPADEResBlock, StyleEncoder, spade
from .unet import UNetGenerator, unet_128, unet_256, unet_512
from .vgg import VGG19Features, load_vgg19

__all__ = [
    "build_discriminator",
    "build_generator",
    "Discriminator",
    "discriminator_class_of",
    "DISCRIMINATOR_CLASSES",
    "DISCRIMINATOR_PRESETS",
    "GENERATOR_CLASSES",
    "GENERATOR_PRESETS",
    "Generator",
    "generator_class_of",
    "generator_size_multiple",
    "global_generator",
    "GlobalGenerator",
    "HubModel",
    "imagegan",
    "init_weights",
    "load_vgg19",
    "local_enhancer",
    "LocalEnhancer",
    "multiscale",
    "MultiscaleDiscriminator",
    "PatchDiscriminator",
    "patchgan",
    "patchgan_70",
    "pixelgan",
    "resnet_6blocks",
    "resnet_9blocks",
    "ResnetGenerator",
    "spade",
    "SPADE",
    "SPADEGenerator",
    "SPADEResBlock",
    "StyleEncoder",
    "unet_128",
    "unet_256",
    "unet_512",
    "UNetGenerator",
    "VGG19Features",
    "WeightsNotFoundError",
]
