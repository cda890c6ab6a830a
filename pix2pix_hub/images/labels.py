"""Label maps as generator inputs (pix2pixHD, Wang et al. 2018, section 3.3): class indices -> one-hot channels,
instance ids -> a boundary map.

A label map is a class-index image (mode ``L`` or ``P``, or 16-bit for more than 256 classes): pixel value ``k``
is class ``k`` of ``label_nc``. It becomes ``label_nc`` channels in {0, 1}; with ``instance``, a 1-channel
boundary map of an instance-id image (e.g. a 16-bit PNG of object ids) is appended, so the generator sees
``label_nc + 1`` channels. With ``dontcare`` (SPADE's ``--contain_dontcare_label``, Park et al. 2019) the map
holds one more class, index ``label_nc`` (or 255, the usual "ignore" value, read as it), the "don't care" pixels,
with its own one-hot channel after the ``label_nc`` classes. Maps are only ever resized with nearest neighbour:
interpolating indices would invent classes. numpy only (no torch ops): this runs in DataLoader workers.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from .palettes import nearest_classes

# Modes whose pixel values are integers as stored: palette indices, 8-bit, 16-bit and 32-bit grey, 1-bit.
INDEX_MODES = ("L", "P", "I;16", "I;16B", "I;16L", "I;16N", "I", "1")
MAX_LISTED_VALUES = 5
# The value many datasets store for "ignore" pixels; with ``dontcare`` it is read as the don't-care class.
DONTCARE_VALUE = 255
# How a bad-label message ends: training can change the model, inference can only change the map.
TRAINING_HINT = "raise --label_nc or fix the map"
MODEL_HINT = "the model has no other classes: fix the map (one class index per pixel, not grey levels or colours)"


class LabelMapError(ValueError):
    """A label or instance map that cannot be used; ``side`` says which file of the row it is (``input`` or
    ``instance``) so the dataset can name that file."""

    def __init__(self, message: str, side: str = "input") -> None:
        super().__init__(message)
        self.side = side


def input_channels(input_nc: int, label_nc: int = 0, instance: bool = False, dontcare: bool = False) -> int:
    """Channels the generator takes: ``label_nc`` (one-hot classes, plus 1 for the don't-care class with
    ``dontcare``) or, with ``label_nc=0``, ``input_nc`` (an image), plus 1 for the instance boundary map. The
    discriminator takes this plus ``output_nc``."""
    if isinstance(label_nc, bool) or not isinstance(label_nc, (int, np.integer)) or label_nc < 0:
        raise ValueError(f"label_nc={label_nc!r} must be 0 (image input) or the number of classes.")
    if dontcare and not label_nc:
        raise ValueError("dontcare=True (a don't-care class) needs label maps: label_nc > 0.")
    labels = int(label_nc) + (1 if dontcare else 0)
    return (labels if label_nc else input_nc) + (1 if instance else 0)


def dontcare_to_index(labels: np.ndarray, label_nc: int, dontcare: bool) -> np.ndarray:
    """With ``dontcare``, ``labels`` with the value 255 read as the don't-care class ``label_nc`` (a copy only
    when a pixel changes); without, ``labels`` as they are."""
    if not dontcare or label_nc == DONTCARE_VALUE or not (labels == DONTCARE_VALUE).any():
        return labels
    return np.where(labels == DONTCARE_VALUE, label_nc, labels)


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


def check_labels(labels: np.ndarray, label_nc: int, hint: str = TRAINING_HINT, dontcare: bool = False) -> None:
    """Raise ``LabelMapError`` naming the values of ``labels`` outside ``0 .. label_nc - 1`` (with ``dontcare``:
    ``0 .. label_nc`` and 255, the don't-care class); the message ends with ``hint``, what the reader can do
    (training: raise ``--label_nc``; inference: ``MODEL_HINT``)."""
    labels = dontcare_to_index(labels, label_nc, dontcare)
    classes = label_nc + (1 if dontcare else 0)
    low, high = int(labels.min(initial=0)), int(labels.max(initial=0))
    if low >= 0 and high < classes:
        return
    values = np.unique(labels[(labels < 0) | (labels >= classes)])
    shown = ", ".join(str(v) for v in values[:MAX_LISTED_VALUES])
    shown += f", ... ({len(values)} distinct)" if len(values) > MAX_LISTED_VALUES else ""
    noun = "value" if len(values) == 1 else "values"
    if dontcare:
        allowed = f"0..{label_nc} or {DONTCARE_VALUE} (label_nc={label_nc} + don't care)"
    else:
        allowed = f"0..{label_nc - 1} (label_nc={label_nc})"
    raise LabelMapError(f"label {noun} {shown} outside {allowed}; {hint}.")


def check_label_channels(
    in_channels: int, label_nc: int | None, instance: bool | None, dontcare: bool | None = False
) -> None:
    """``ValueError`` when a model recorded as taking label maps (``label_nc`` classes, ``instance`` maps, a
    ``dontcare`` class) has a generator whose ``in_channels`` do not fit them; nothing to check for an image model
    (``label_nc`` 0/None)."""
    if not label_nc:
        return
    expected = input_channels(0, label_nc, bool(instance), bool(dontcare))
    if in_channels != expected:
        maps = (" with instance maps" if instance else "") + (" and a don't-care class" if dontcare else "")
        raise ValueError(
            f"info.label_nc={label_nc}{maps} needs a generator taking {expected} channels; it takes {in_channels}."
        )


def resize_nearest(array: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``(H, W)`` -> ``(h, w)`` for ``size`` = (w, h) by nearest neighbour: every output value is an input value.

    Samples each output pixel's centre, as PIL's NEAREST does, but for any integer dtype (16-bit ids included).
    """
    width, height = size
    rows = ((np.arange(height) + 0.5) * array.shape[0] / height).astype(np.int64)
    cols = ((np.arange(width) + 0.5) * array.shape[1] / width).astype(np.int64)
    return array[np.minimum(rows, array.shape[0] - 1)[:, None], np.minimum(cols, array.shape[1] - 1)[None, :]]


def one_hot(labels: np.ndarray, label_nc: int, dontcare: bool = False) -> np.ndarray:
    """``(H, W)`` class indices -> ``(label_nc, H, W)`` float32, 1 in channel ``labels[y, x]``, 0 elsewhere; with
    ``dontcare`` ``(label_nc + 1, H, W)``, the last channel the don't-care class (index ``label_nc`` or 255)."""
    labels = dontcare_to_index(labels, label_nc, dontcare)
    classes = np.arange(label_nc + (1 if dontcare else 0), dtype=labels.dtype)[:, None, None]
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
    hint: str = TRAINING_HINT,
    dontcare: bool = False,
) -> torch.Tensor:
    """A class-index map (and its instance ids) -> the generator's input; for ``Pix2Pix`` on a label-map model
    (through ``encode_label_input``), the training data and the Space's class painting.

    Args:
        labels: ``(H, W)`` class indices (``index_array`` reads images), each below ``label_nc``.
        label_nc: the number of classes.
        instance: append the instance boundary channel; without ``instance_ids`` the classes themselves serve as
            instances (boundaries between classes only).
        instance_ids: ``(H, W)`` instance ids.
        hint: how a bad-value error ends (``TRAINING_HINT`` or ``MODEL_HINT``).
        dontcare: the map holds a don't-care class (index ``label_nc`` or 255) with its own channel.

    Returns:
        ``(label_nc [+ 1 don't care] [+ 1 instance], H, W)`` float32 in {0, 1}.
    """
    array = index_array(labels)
    check_labels(array, label_nc, hint, dontcare)
    channels = [one_hot(array, label_nc, dontcare)]
    if instance:
        ids = array if instance_ids is None else index_array(instance_ids, "instance map", "instance")
        check_same_shape(ids, array)
        channels.append(instance_edges(ids)[None])
    return torch.from_numpy(np.concatenate(channels))


def check_same_shape(ids: np.ndarray, labels: np.ndarray) -> None:
    """``LabelMapError`` (side ``instance``) when an instance map and its label map differ in size."""
    if ids.shape != labels.shape:
        raise LabelMapError(
            f"the instance map is {ids.shape[::-1]} but the label map {labels.shape[::-1]} (W, H).", "instance"
        )


def label_indices(labels: Image.Image | np.ndarray, label_nc: int) -> np.ndarray:
    """A class-index map -> ``(H, W)`` int64: a PIL image of mode L, P (indices, not colours), I;16, I or 1, or a
    2-D integer array, as stored; an RGB(A) image or ``(H, W, 3|4)`` uint8 array only when every pixel is exactly
    a ``label_palette(label_nc)`` colour (``labels_to_image``'s pictures, read back by ``colors_to_labels``)."""
    rgb = None
    if isinstance(labels, Image.Image) and labels.mode in ("RGB", "RGBA"):
        rgb = np.asarray(labels.convert("RGB"))
    elif isinstance(labels, np.ndarray) and labels.ndim == 3 and labels.dtype == np.uint8 and labels.shape[2] in (3, 4):
        rgb = labels[..., :3]
    if rgb is None:
        return index_array(labels)
    indices = colors_to_labels(rgb, label_nc)
    if not np.array_equal(label_palette(label_nc)[indices], rgb):
        raise LabelMapError(
            f"This model takes a class-index map ({label_nc} classes: a PIL image of mode L, P or I;16, or an (H, W) "
            "integer array); got an RGB image whose colours are not the model's class colours (labels.label_palette)."
        )
    return indices


def label_map_size(labels: Image.Image | np.ndarray) -> tuple[int, int]:
    """``(H, W)`` of a label map given as a PIL image or an array, read without decoding or converting it."""
    if isinstance(labels, Image.Image):
        return labels.height, labels.width
    shape = np.shape(labels)
    if len(shape) not in (2, 3):  # (H, W) indices, or (H, W, 3|4) class colours
        raise LabelMapError(f"the label map must be a 2-D integer array (H, W); got shape {shape}.")
    return shape[0], shape[1]


def encode_label_input(
    labels: Image.Image | np.ndarray,
    label_nc: int,
    instance: bool,
    instance_ids: Image.Image | np.ndarray | None = None,
    size: tuple[int, int] | None = None,
    dontcare: bool = False,
) -> torch.Tensor:
    """What a label-map model's generator takes for a user's map: ``labels`` (any form ``label_indices`` reads) and
    its instance ids -> ``(label_nc [+ 1 don't care] [+ 1], h, w)`` in {0, 1}, both maps first resized (nearest) to
    ``size`` = (h, w) when given. Bad values end in ``MODEL_HINT``: at inference the map, not the model, is what can
    change."""
    array = label_indices(labels, label_nc)
    check_labels(array, label_nc, MODEL_HINT, dontcare)  # before resizing, which could drop a bad value
    ids = None if instance_ids is None else index_array(instance_ids, "instance map", "instance")
    if ids is not None:
        check_same_shape(ids, array)
    if size is not None:
        array = resize_nearest(array, size[::-1])
        ids = None if ids is None else resize_nearest(ids, size[::-1])
    return encode_label_map(array, label_nc, instance, ids, MODEL_HINT, dontcare)


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
    return nearest_classes(np.asarray(rgb)[..., :3], label_palette(label_nc))[0]
