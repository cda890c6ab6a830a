"""A preview grid of a paired source's first pairs (input | target rows), as ``pix2pix-hub dataset check
--preview`` writes it, never into the source it shows."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from PIL import Image

from ..fileio import save_image
from ..images.arrays import make_grid, tensor_to_image
from .checks import BadSampleError, open_pair, raw_rows
from .transforms import PairedTransform


def write_preview(pairs: Any, path: str | os.PathLike, rows: int, augment: bool) -> int:
    """Save input | target rows for the first readable pairs, atomically.

    Args:
        pairs: what ``select_pairs``/``load_pairs`` return.
        path: the image file to write; its suffix chooses the format.
        rows: how many pairs to draw at most; unreadable ones are passed over.
        augment: draw what the training transform (286 -> 256 crop, flip) makes of each pair.

    Returns:
        The number of rows drawn.
    """
    transform = PairedTransform() if augment else None
    grid_rows = []
    for index, row in enumerate(raw_rows(pairs)):
        if len(grid_rows) >= rows:
            break
        try:
            source, target = open_pair(index, row)
            if transform is not None:
                x, y = transform(source, target, seed=index)
                source, target = tensor_to_image(x), tensor_to_image(y)
        except (BadSampleError, ValueError):
            continue  # the check lists it
        grid_rows.append([source.convert("RGB"), target.convert("RGB")])
    if not grid_rows:
        raise ValueError("no readable pair to preview")
    extension = Path(path).suffix.lower()
    image_format = Image.registered_extensions().get(extension)
    if image_format is None:
        raise ValueError(f"--preview {path}: unknown image extension {extension!r}; use .png or .jpg")
    save_image(make_grid(grid_rows), path, image_format)
    return len(grid_rows)


def check_preview_target(preview: str | os.PathLike, source: str | os.PathLike) -> None:
    """``ValueError`` when the preview would be written into a local source: over one of its images, or as a new
    image that loading the source would then read as a pair."""
    target, origin = Path(preview).resolve(), Path(source).resolve()
    if target == origin or (origin.is_dir() and target.is_relative_to(origin)):
        raise ValueError(
            f"--preview {preview} is inside the source {source}: it would replace or add an image of the source."
        )
