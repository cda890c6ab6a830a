"""Label maps as generator inputs (pix2pixHD, Wang et al. 2018, section 3.3): class indices -> one-hot channels,
instance ids -> a boundary map.

A label map is a class-index image (mode ``L`` or ``P``, or 16-bit for more than 256 classes): pixel value ``k``
is class ``k`` of ``label_nc``. It becomes ``label_nc`` channels in {0, 1}; with ``instance``, a 1-channel
boundary map of an instance-id image (e.g. a 16-bit PNG of object ids) is appended, so the generator sees
``label_nc + 1`` channels. Maps are only ever resized with nearest neighbour: interpolating indices would invent
classes. numpy only (no torch ops): this runs in DataLoader workers.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

# Modes whose pixel values are integers as stored: palette indices, 8-bit, 16-bit and 32-bit grey, 1-bit.
INDEX_MODES = ("L", "P", "I;16", "I;16B", "I;16L", "I;16N", "I", "1")
MAX_LISTED_VALUES = 5


class LabelMapError(ValueError):
    """A label or instance map that cannot be used; ``side`` says which file of the row it is (``input`` or
    ``instance``) so the dataset can name that file."""

    def __init__(self, message: str, side: str = "input") -> None:
        super().__init__(message)
        self.side = side


def input_channels(input_nc: int, label_nc: int = 0, instance: bool = False) -> int:
    """Channels the generator takes: ``label_nc`` (one-hot classes) or, with ``label_nc=0``, ``input_nc`` (an
    image, as today), plus 1 for the instance boundary map. The discriminator takes this plus ``output_nc``."""
    if isinstance(label_nc, bool) or not isinstance(label_nc, (int, np.integer)) or label_nc < 0:
        raise ValueError(f"label_nc={label_nc!r} must be 0 (image input) or the number of classes.")
    return (int(label_nc) if label_nc else input_nc) + (1 if instance else 0)


def index_array(image: Image.Image | np.ndarray, what: str = "label map", side: str = "input") -> np.ndarray:
    """A class-index or instance-id image -> ``(H, W)`` int64 array of its stored values (palette indices for
    ``P``, never colours). Colour images are refused: their values are not indices."""
    if isinstance(image, Image.Image):
        if image.mode not in INDEX_MODES:
            raise LabelMapError(
                f"the {what} is a {image.mode} image; it must hold one integer per pixel (mode L or P, or a 16-bit "
                "PNG), not colours. Convert colour-coded maps to class indices first.",
                side,
            )
        image = np.asarray(image)
    array = np.asarray(image)
    if array.ndim != 2 or not (np.issubdtype(array.dtype, np.integer) or array.dtype == bool):
        raise LabelMapError(f"the {what} must be a 2-D integer array (H, W); got {array.dtype} {array.shape}.", side)
    return array.astype(np.int64, copy=False)


def check_labels(labels: np.ndarray, label_nc: int) -> None:
    """Raise ``LabelMapError`` naming the values of ``labels`` outside ``0 .. label_nc - 1``."""
    low, high = int(labels.min(initial=0)), int(labels.max(initial=0))
    if low >= 0 and high < label_nc:
        return
    values = np.unique(labels[(labels < 0) | (labels >= label_nc)])
    shown = ", ".join(str(v) for v in values[:MAX_LISTED_VALUES])
    shown += f", ... ({len(values)} distinct)" if len(values) > MAX_LISTED_VALUES else ""
    noun = "value" if len(values) == 1 else "values"
    raise LabelMapError(
        f"label {noun} {shown} outside 0..{label_nc - 1} (label_nc={label_nc}); raise --label_nc or fix the map."
    )


def resize_nearest(array: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``(H, W)`` -> ``(h, w)`` for ``size`` = (w, h) by nearest neighbour: every output value is an input value.

    Samples each output pixel's centre, as PIL's NEAREST does, but for any integer dtype (16-bit ids included).
    """
    width, height = size
    rows = ((np.arange(height) + 0.5) * array.shape[0] / height).astype(np.int64)
    cols = ((np.arange(width) + 0.5) * array.shape[1] / width).astype(np.int64)
    return array[np.minimum(rows, array.shape[0] - 1)[:, None], np.minimum(cols, array.shape[1] - 1)[None, :]]


def one_hot(labels: np.ndarray, label_nc: int) -> np.ndarray:
    """``(H, W)`` class indices -> ``(label_nc, H, W)`` float32, 1 in channel ``labels[y, x]``, 0 elsewhere."""
    classes = np.arange(label_nc, dtype=labels.dtype)[:, None, None]
    return (labels[None] == classes).astype(np.float32)


def instance_edges(ids: np.ndarray) -> np.ndarray:
    """pix2pixHD's ``get_edges``: ``(H, W)`` instance ids -> ``(H, W)`` float32, 1 where a pixel's id differs from
    its left, right, upper or lower neighbour (both pixels of such a pair are edges), 0 elsewhere."""
    edges = np.zeros(ids.shape, dtype=bool)
    across = ids[:, 1:] != ids[:, :-1]
    edges[:, 1:] |= across
    edges[:, :-1] |= across
    down = ids[1:, :] != ids[:-1, :]
    edges[1:, :] |= down
    edges[:-1, :] |= down
    return edges.astype(np.float32)


def encode_label_map(
    labels: np.ndarray | Image.Image,
    label_nc: int,
    instance: bool = False,
    instance_ids: np.ndarray | Image.Image | None = None,
) -> torch.Tensor:
    """A class-index map (and its instance ids) -> the generator's input ``(label_nc [+ 1], H, W)`` in {0, 1}.

    For ``Pix2Pix`` on a label-map model and the Space's class painting. With ``instance`` and no
    ``instance_ids``, the classes themselves serve as instances (boundaries between classes only).
    """
    array = index_array(labels)
    check_labels(array, label_nc)
    channels = [one_hot(array, label_nc)]
    if instance:
        ids = array if instance_ids is None else index_array(instance_ids, "instance map", "instance")
        if ids.shape != array.shape:
            raise LabelMapError(f"the instance map is {ids.shape} but the label map {array.shape}.", "instance")
        channels.append(instance_edges(ids)[None])
    return torch.from_numpy(np.concatenate(channels))


def label_palette(label_nc: int) -> np.ndarray:
    """``(label_nc, 3)`` uint8 colours, one per class: the PASCAL VOC colour map pix2pixHD shows label maps with
    (bits of the class index spread over R, G, B from the high bit down; class 0 black)."""
    index = np.arange(label_nc)
    palette = np.zeros((label_nc, 3), dtype=np.int64)
    for bit in range(8):
        for channel in range(3):
            palette[:, channel] |= ((index >> (3 * bit + channel)) & 1) << (7 - bit)
    return palette.astype(np.uint8)


def labels_to_image(labels: np.ndarray | torch.Tensor, label_nc: int) -> Image.Image:
    """Class indices ``(H, W)``, or a one-hot input ``(label_nc [+ 1], H, W)`` (argmax of its first ``label_nc``
    channels), -> an RGB picture in ``label_palette`` colours (validation grids, previews)."""
    array = labels.detach().cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
    if array.ndim == 3:
        array = array[:label_nc].argmax(axis=0)
    return Image.fromarray(label_palette(label_nc)[np.clip(array, 0, label_nc - 1)])


def colors_to_labels(rgb: np.ndarray, label_nc: int) -> np.ndarray:
    """``(H, W, 3)`` uint8 painted in ``label_palette`` colours -> ``(H, W)`` class indices of the nearest palette
    colour (a brush's anti-aliased edges snap to a class; the Space's drawing tab)."""
    palette = label_palette(label_nc).astype(np.int32)
    pixels = np.asarray(rgb)[..., :3].reshape(-1, 1, 3).astype(np.int32)
    nearest = np.empty(pixels.shape[0], dtype=np.int64)
    for start in range(0, pixels.shape[0], 65536):  # bounded memory: chunk x classes distances at a time
        chunk = pixels[start : start + 65536]
        nearest[start : start + 65536] = ((chunk - palette[None]) ** 2).sum(axis=2).argmin(axis=1)
    return nearest.reshape(np.asarray(rgb).shape[:2])
