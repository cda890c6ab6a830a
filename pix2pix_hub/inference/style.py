"""Style codes of a multi-modal generator (GauGAN's SPADE generator with its style encoder, ``use_vae``).

The same label map gives many photos, one per style code ``z`` ``(z_dim,)``; a call picks it (``style_code``):

- ``style=image``: the encoder's mean for that image (``mu`` of ``generator.encode``; the log-variance is not used,
  so the same image always gives the same code). Any size: the encoder resizes it.
- ``seed=n``: a sample of N(0, I) drawn from a ``torch.Generator`` seeded ``n`` on the CPU, so the same seed gives
  the same code in every call and process, on any device.
- neither: the zero code, the prior's mean (what ``SPADEGenerator`` uses for ``z=None``).

One code serves every image of a call (a batch gets one style). The encoder runs in torch, also where the generator
runs on onnxruntime: the exported graph takes the code as its second input (``export.STYLE_NAME``).
"""

from __future__ import annotations

import numbers
from typing import Any

import torch
from torch import nn

from ..images.reading import check_max_pixels
from ..models.spade import SPADEGenerator
from .generate import generator_mode
from .processor import ImageProcessor, input_size


def style_dim(generator: nn.Module) -> int:
    """The length of the style code ``generator`` takes: its ``z_dim`` for a SPADE generator with a style encoder,
    0 for any other (which takes none)."""
    if isinstance(generator, SPADEGenerator) and generator.encoder is not None:
        return int(generator.z_dim)
    return 0


def check_style_arguments(generator: nn.Module, style: Any, seed: Any) -> None:
    """``ValueError`` for ``style=``/``seed=`` the generator cannot take, or both at once; ``TypeError`` for a
    seed that is not an integer."""
    if style is None and seed is None:
        return
    if not style_dim(generator):
        given = "style=" if style is not None else "seed="
        raise ValueError(
            f"{given} picks a style code, and this model ({type(generator).__name__}) takes none: only a SPADE "
            "generator trained with a style encoder (--use_vae) does. Call it without style= or seed=."
        )
    if style is not None and seed is not None:
        raise ValueError("Give style= (an image) or seed= (an integer), not both: each picks the style code.")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral)):
        raise TypeError(f"seed= must be an integer; got {type(seed).__name__} {seed!r}.")


def style_code(
    generator: nn.Module, style: Any = None, seed: int | None = None, max_pixels: int | None = None
) -> torch.Tensor | None:
    """The style code a call runs with (see the module docstring).

    Args:
        generator: the network.
        style: a style image: a PIL image, an ``(H, W, 3)`` uint8 or [0, 1] float array, or a ``(3, H, W)``
            tensor in [-1, 1]; any size (within ``max_pixels``).
        seed: an integer seed for a sampled code.
        max_pixels: the largest style image taken (None: no limit).

    Returns:
        ``(1, z_dim)`` float32 on the CPU for a generator with a style encoder (the zero code when neither
        ``style`` nor ``seed`` is given); None for any other generator.

    Raises:
        ValueError, TypeError: as ``check_style_arguments``; bad style images as ``ImageProcessor`` says.
    """
    check_style_arguments(generator, style, seed)
    dim = style_dim(generator)
    if not dim:
        return None
    if seed is not None:
        return torch.randn(1, dim, generator=torch.Generator().manual_seed(int(seed)))
    if style is None:
        return torch.zeros(1, dim)
    return encode_style(generator, style_tensor(style, max_pixels))


def style_tensor(style: Any, max_pixels: int | None = None) -> torch.Tensor:
    """A style image (any kind ``Pix2Pix`` takes, RGB) -> ``(1, 3, H, W)`` in [-1, 1] at its own size."""
    if isinstance(style, torch.Tensor) and style.ndim == 4 and style.shape[0] == 1:
        style = style[0]
    limit = max_pixels if max_pixels is not None else 1 << 62
    size = input_size(style)
    if size is not None:
        check_max_pixels(size, limit, "the style image")  # ImageTooLarge, as for any input
    processor = ImageProcessor(in_channels=3, size_multiple=1, min_size=1, max_pixels=limit)
    try:
        prepared = processor.preprocess([style])
    except TypeError as error:
        raise TypeError(f"style: {error}") from None
    except ValueError as error:
        raise ValueError(f"style: {error}") from None
    return torch.as_tensor(prepared.groups[0].batch).float()


def encode_style(generator: nn.Module, style: torch.Tensor) -> torch.Tensor:
    """The encoder's mean for a ``(1, 3, H, W)`` style image in [-1, 1]: ``(1, z_dim)`` float32 on the CPU."""
    weight = next(generator.parameters())
    with torch.inference_mode(), generator_mode(generator):
        mean, _ = generator.encode(style.to(weight.device, weight.dtype))
    return mean.float().cpu()
