"""The inputs int8 quantization calibrates on: how many, which ones, and reading them as model inputs.

``DEFAULT_NUM_CALIBRATION`` typical inputs calibrate as well as many more (``quantize.quantize_int8`` holds the last
quarter back for its quality gate). ``spread_indices`` picks them evenly from first to last, so that a folder in
name order, or a dataset in its own order, is sampled whole rather than by its start; every evenly spaced pick in
the package (a folder, a list, a dataset's rows) goes through it. ``calibration_inputs`` reads a folder or a list of
images into float32 model inputs.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
from PIL import Image

from ..images.arrays import convert_image, uint8_to_model
from ..images.reading import UnreadableImage, check_max_pixels, image_extensions, load_image

# Why 32: calibration ranges stop moving well before that many real inputs, and a quarter of them is enough to
# gate the result; more only costs time (docs/performance.md).
DEFAULT_NUM_CALIBRATION = 32

CalibrationSource = str | os.PathLike | Sequence[Any]

T = TypeVar("T")
logger = logging.getLogger(__name__)


def spread_indices(size: int, count: int) -> list[int]:
    """``count`` indices into ``size`` items, evenly spaced from the first to the last, in order; all of them
    (``range(size)``) when there are no more than ``count``."""
    if size <= count:
        return list(range(size))
    return [round(k * (size - 1) / max(1, count - 1)) for k in range(count)]


def spread_evenly(items: Sequence[T], count: int) -> list[T]:
    """``count`` of ``items`` evenly spaced from the first to the last (``spread_indices``)."""
    return [items[index] for index in spread_indices(len(items), count)]


def calibration_inputs(source: CalibrationSource, channels: int, count: int, max_pixels: int) -> list[np.ndarray]:
    """Up to ``count`` model inputs spread evenly over ``source``, each at its own size.

    Args:
        source: a folder of input images (searched recursively in name order; hidden entries and files that are
            not readable images are skipped), or a list of PIL images, uint8 arrays ``(H, W)`` / ``(H, W, C)``,
            image file paths (unreadable ones skipped) or float arrays/tensors ``(C, H, W)`` in [-1, 1] (what the
            training data gives).
        channels: the model's input channels.
        count: how many to take (``DEFAULT_NUM_CALIBRATION`` by default where callers offer it).
        max_pixels: the largest image accepted (``images.reading.ImageTooLarge`` above it).

    Returns:
        float32 arrays ``(1, channels, H, W)`` in [-1, 1]; pad them to the generator's size multiple before
        calibrating (``quantize.quantize_generator`` does).

    Raises:
        ValueError: fewer than two usable inputs (calibration and its quality gate need one each at least), or an
            item of the wrong shape or range.
    """
    if isinstance(source, (str, os.PathLike)):
        items: list[Any] = spread_evenly(image_files(Path(source)), count)
    else:
        items = spread_evenly(list(source), count)
    inputs = []
    for item in items:
        if isinstance(item, (str, os.PathLike)):
            try:
                item = load_image(Path(item), channels, max_pixels)
            except UnreadableImage as error:  # one bad file among many: calibration needs typical inputs, not all
                logger.warning("calibration: skipped %s", error)
                continue
        inputs.append(model_input(item, channels, max_pixels))
    if len(inputs) < 2:
        described = str(source) if isinstance(source, (str, os.PathLike)) else f"the {len(source)} given"
        raise ValueError(
            f"{len(inputs)} usable calibration image(s) in {described}; int8 calibration and its quality gate need "
            f"at least 2 (about {DEFAULT_NUM_CALIBRATION} typical inputs of the model are best)."
        )
    return inputs


def image_files(folder: Path) -> list[Path]:
    """The image files under ``folder`` (recursively, in name order), hidden files and folders left out."""
    if not folder.is_dir():
        raise FileNotFoundError(f"Calibration folder {folder} does not exist (or is not a folder).")
    extensions = image_extensions()
    return [
        path
        for path in sorted(folder.rglob("*"))
        if path.suffix.lower() in extensions
        and not any(part.startswith(".") for part in path.relative_to(folder).parts)
    ]


def model_input(item: Any, channels: int, max_pixels: int | None = None) -> np.ndarray:
    """One image as a model input: float32 ``(1, channels, H, W)`` in [-1, 1].

    Args:
        item: a PIL image, a uint8 array ``(H, W)`` / ``(H, W, C)``, or a float array or tensor ``(C, H, W)`` /
            ``(1, C, H, W)`` in [-1, 1].
        channels: the channels the model takes.
        max_pixels: the largest image accepted (None: any).

    Returns:
        A contiguous float32 array.
    """
    if isinstance(item, Image.Image):
        item = np.asarray(convert_image(item, channels), dtype=np.uint8)
    array = item.detach().cpu().float().numpy() if isinstance(item, torch.Tensor) else np.asarray(item)
    if array.dtype == np.uint8:
        array = uint8_to_model((array[:, :, None] if array.ndim == 2 else array)[None])
    else:
        array = np.asarray(array, dtype=np.float32)
        array = array[None] if array.ndim == 3 else array
    if array.ndim != 4 or array.shape[:2] != (1, channels):
        raise ValueError(
            f"A calibration image has shape {np.shape(item)}; this model takes {channels}-channel images: expected "
            f"a uint8 image (H, W, {channels}) or a float array ({channels}, H, W) in [-1, 1]."
        )
    if max_pixels is not None:
        check_max_pixels((array.shape[3], array.shape[2]), max_pixels, "A calibration image")
    if array.size and not np.abs(array).max() <= 1.0 + 1e-3:
        raise ValueError("Float calibration images must hold values in [-1, 1]; pass 8-bit images as uint8 arrays.")
    return np.ascontiguousarray(array, dtype=np.float32)
