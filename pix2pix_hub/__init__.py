"""pix2pix as a Hugging Face model package: U-Net/ResNet generators, PatchGAN, and the ``Pix2Pix`` translator.

Importing this package pulls in torch, huggingface_hub and safetensors only; training (accelerate, datasets)
and the Space (gradio) live behind their own imports.
"""

from .hub.authors import convert_authors_checkpoint, load_authors_checkpoint
from .hub.model_info import ModelInfo
from .inference.pipeline import Pix2Pix
from .models import (
    GlobalGenerator,
    LocalEnhancer,
    MultiscaleDiscriminator,
    PatchDiscriminator,
    ResnetGenerator,
    SPADEGenerator,
    UNetGenerator,
    build_discriminator,
    build_generator,
    init_weights,
    resnet_6blocks,
    resnet_9blocks,
    unet_128,
    unet_256,
    unet_512,
)

__version__ = "0.1.0"

__all__ = [
    "GlobalGenerator",
    "LocalEnhancer",
    "ModelInfo",
    "MultiscaleDiscriminator",
    "PatchDiscriminator",
    "Pix2Pix",
    "ResnetGenerator",
    "SPADEGenerator",
    "UNetGenerator",
    "__version__",
    "build_discriminator",
    "build_generator",
    "convert_authors_checkpoint",
    "init_weights",
    "load_authors_checkpoint",
    "resnet_6blocks",
    "resnet_9blocks",
    "unet_128",
    "unet_256",
    "unet_512",
]
