"""Conversions between PIL images, numpy arrays and model tensors in [-1, 1].

One place that knows the odd image modes (palette, RGBA, CMYK, 16-bit, 1-bit), shared by inference and data.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from PIL import Image, ImageOps

CHANNEL_MODES = {1: "L", 3: "RGB", 4: "RGBA"}
SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")
RANGE_TOLERANCE = 1e-3  # float rounding noise; a quarter of one 8-bit level on the [0, 1] scale


def upright(image: Image.Image) -> Image.Image:
    """``image`` as it is meant to be seen: turned per its EXIF orientation (a phone photo taken in portrait);
    the same object when it has none. Decodes the image when it turns it."""
    orientation = image.getexif().get(Image.ExifTags.Base.Orientation)
    return image if orientation in (None, 1) else ImageOps.exif_transpose(image)


def check_range(values: np.ndarray | torch.Tensor, low: float, high: float, what: str, hint: str) -> None:
    """``ValueError`` unless every value is finite and within ``[low, high]`` (give or take ``RANGE_TOLERANCE``);
    the message says the range expected, the range found and ``hint``."""
    lowest, highest = float(values.min()), float(values.max())
    if math.isnan(lowest) or math.isnan(highest):
        raise ValueError(f"{what} must hold values in [{low:g}, {high:g}]; got NaN. {hint}")
    if lowest < low - RANGE_TOLERANCE or highest > high + RANGE_TOLERANCE:
        raise ValueError(f"{what} must hold values in [{low:g}, {high:g}]; got {lowest:.4g}..{highest:.4g}. {hint}")


def check_channels(channels: int, name: str = "channels") -> str:
    """The PIL mode for a channel count, or a ValueError naming the accepted counts."""
    if channels not in CHANNEL_MODES:
        raise ValueError(f"{name}={channels} is not supported; use 1 (grayscale), 3 (RGB) or 4 (RGBA).")
    return CHANNEL_MODES[channels]


def convert_image(image: Image.Image, channels: int) -> Image.Image:
    """Convert any PIL image to the model's channel count.

    Args:
        image: any mode. 16-bit images are scaled (not clipped) to 8 bits; RGBA and LA are composited on white
            when the alpha channel is dropped; palette, CMYK and 1-bit images go through RGB/L.
        channels: 1, 3 or 4.

    Returns:
        The image in mode L, RGB or RGBA (itself when already in it).
    """
    mode = check_channels(channels)
    if image.mode == mode:
        return image
    if image.mode in SIXTEEN_BIT_MODES or image.mode == "F":
        array = np.asarray(image, dtype=np.float64)
        scale = 255.0 / 65535.0 if image.mode != "F" and array.max(initial=0) > 255 else 1.0
        image = Image.fromarray(np.clip(array * scale, 0, 255).astype(np.uint8), mode="L")
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA") and mode != "RGBA":
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    return image.convert(mode)


def image_to_tensor(image: Image.Image, channels: int) -> torch.Tensor:
    """PIL image -> float tensor ``(channels, H, W)`` in [-1, 1]."""
    array = np.asarray(convert_image(image, channels), dtype=np.uint8)
    return uint8_to_tensor(array)


def uint8_to_tensor(array: np.ndarray) -> torch.Tensor:
    """uint8 ``(H, W)`` or ``(H, W, C)`` array -> float tensor ``(C, H, W)`` in [-1, 1]."""
    if array.ndim == 2:
        array = array[:, :, None]
    tensor = torch.from_numpy(np.array(array, dtype=np.uint8)).permute(2, 0, 1)
    return tensor.float().div_(127.5).sub_(1.0)


def tensor_to_uint8(tensor: torch.Tensor) -> np.ndarray:
    """Float tensor ``(C, H, W)`` in [-1, 1] -> uint8 array ``(H, W, C)`` (``(H, W)`` for one channel)."""
    array = tensor.detach().float().add(1.0).mul(127.5).round().clamp(0, 255).to(torch.uint8)
    array = array.permute(1, 2, 0).cpu().numpy()
    return array[:, :, 0] if array.shape[2] == 1 else array


def uint8_to_model(array: np.ndarray) -> np.ndarray:
    """uint8 ``(N, H, W, C)`` -> float32 ``(N, C, H, W)`` in [-1, 1]: ``uint8_to_tensor`` in numpy, bit for bit."""
    return array.transpose(0, 3, 1, 2).astype(np.float32) / np.float32(127.5) - np.float32(1.0)


def model_to_uint8(array: np.ndarray) -> np.ndarray:
    """float32 ``(C, H, W)`` in [-1, 1] -> uint8 ``(H, W, C)``: ``tensor_to_uint8``'s rounding, in numpy."""
    scaled = (array.transpose(1, 2, 0).astype(np.float32, copy=False) + np.float32(1.0)) * np.float32(127.5)
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def tensor_to_image(tensor: torch.Tensor) -> Image.Image:
    """Float tensor ``(C, H, W)`` in [-1, 1] -> PIL image (L, RGB or RGBA)."""
    return Image.fromarray(tensor_to_uint8(tensor))


def make_grid(rows: list[list[Image.Image]], pad: int = 4, background: int = 255) -> Image.Image:
    """Paste rows of images into one picture (input | output | target rows); cells take the largest size."""
    cell_w = max(image.width for row in rows for image in row)
    cell_h = max(image.height for row in rows for image in row)
    columns = max(len(row) for row in rows)
    grid = Image.new("RGB", (columns * (cell_w + pad) + pad, len(rows) * (cell_h + pad) + pad), (background,) * 3)
    for r, row in enumerate(rows):
        for c, image in enumerate(row):
            grid.paste(image.convert("RGB"), (pad + c * (cell_w + pad), pad + r * (cell_h + pad)))
    return grid
